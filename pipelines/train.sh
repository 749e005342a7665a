#!/usr/bin/env bash
# pipelines/train.sh - resumable training: dlt-sample | dlt-train into a
# checkpoint, continued from where it stopped when the checkpoint exists.
#
#   train.sh CKPT SAMPLE_OPTION... -- TRAIN_OPTION...
#
# Fresh:   dlt-sample SAMPLE... | dlt-train TRAIN... -o CKPT
# Resumed: dlt-sample SAMPLE... --skip R | dlt-train TRAIN... --resume CKPT -o CKPT
# where R is the number of stream records the checkpoint's steps consumed
# (its "records" metadata), so the resumed run sees exactly the records the
# uninterrupted run would have seen.
#
# SIGTERM or SIGINT (a Slurm time limit with --signal=B:TERM@..., Ctrl-C)
# is passed to dlt-train alone, which finishes its step, writes CKPT and
# exits; dlt-sample then ends on the closed pipe.
#
# Exit status: 0 when CKPT has reached its step target (the "steps" given
# to dlt-train --steps), 75 (EX_TEMPFAIL) when it stopped early and can be
# resumed by running the same command again, else dlt-train's failure.
# DLT_BIN, when set, is the directory of the dlt tools. DLT_LAUNCH, when
# set, are the words that start dlt-train data-parallel, e.g.
# "srun --input=0" under Slurm or "mpirun -np 4" (stdin reaches rank 0
# alone, which reads the stream; see dlt-train(1), DATA PARALLELISM).
# DLT_STOP_SIGNAL is the signal a TERM or INT is passed on as (default
# TERM, which srun forwards to every rank; give USR1 for mpirun, which
# forwards USR1 but takes TERM as "end the job", closing rank 0's stdin).
set -u
die() { echo "train.sh: error: $*" >&2; exit 2; }
[ $# -ge 2 ] || die "usage: train.sh CKPT SAMPLE_OPTION... -- TRAIN_OPTION..."
ckpt=$1; shift
sample=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do sample+=("$1"); shift; done
[ $# -gt 0 ] || die "no '--' between the dlt-sample and dlt-train options"
shift
train=("$@")
bin=${DLT_BIN:+$DLT_BIN/}
read -r -a launch <<< "${DLT_LAUNCH:-}"

# meta KEY FILE: a metadata value of a model file (empty if absent)
meta() { "${bin}dlt-info" --json "$2" | sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"; }

skip=() resume=()
if [ -s "$ckpt" ]; then
    records=$(meta records "$ckpt") || exit 1
    [ -n "$records" ] || die "$ckpt: no 'records' in its metadata (not a dlt-train checkpoint?)"
    step=$(meta step "$ckpt"); target=$(meta steps "$ckpt")
    if [ -n "$target" ] && [ "$step" -ge "$target" ] 2>/dev/null; then
        echo "train.sh: $ckpt: already at step $step of $target" >&2
        exit 0
    fi
    echo "train.sh: resuming $ckpt at step $step ($records records consumed)" >&2
    skip=(--skip "$records"); resume=(--resume "$ckpt")
fi

# The pipeline in the background, so that a trapped signal is handled at
# once (bash runs traps only between foreground commands); $! is dlt-train.
# Both tools run in sessions of their own (setsid; it execs in place, as
# neither leads a process group), so that a signal sent to the whole group
# (Ctrl-C on a terminal, make, kill -- -PGID) reaches only this script,
# which passes it on once: dlt-train takes a second signal as "stop now,
# without a checkpoint", and dlt-sample dying first would cut the stream.
stopping=0
setsid "${bin}dlt-sample" "${sample[@]}" "${skip[@]}" | setsid "${launch[@]}" "${bin}dlt-train" "${train[@]}" "${resume[@]}" -o "$ckpt" &
pid=$!
forward() { stopping=1; kill -"${DLT_STOP_SIGNAL:-TERM}" "$pid" 2>/dev/null; }
trap forward TERM INT
while :; do
    wait "$pid"; rc=$?
    # a trapped signal interrupts wait (status > 128): wait for dlt-train's
    # own status, which bash keeps for a finished background job
    if [ "$rc" -gt 128 ] && [ "$stopping" = 1 ]; then
        kill -0 "$pid" 2>/dev/null && continue
        wait "$pid" 2>/dev/null; r=$?; [ "$r" -ne 127 ] && rc=$r
    fi
    break
done
trap - TERM INT
[ "$rc" -eq 0 ] || { echo "train.sh: dlt-train failed (exit $rc)" >&2; exit "$rc"; }
step=$(meta step "$ckpt"); target=$(meta steps "$ckpt")
if [ -n "$target" ] && [ "$step" -lt "$target" ]; then
    echo "train.sh: stopped at step $step of $target$([ $stopping = 1 ] && echo ' on a signal'); run again to resume" >&2
    exit 75
fi
exit 0
