#!/usr/bin/env bats
# pipelines/slurm: job scripts parse, the chain is submitted with afterok
# dependencies, and a training task stopped by SIGTERM (a time limit)
# checkpoints, asks to be requeued, and resumes bit-exactly when run again
# (without Slurm: SLURM_* set by hand, scontrol faked).

setup() {
    ROOT="$(cd "$BATS_TEST_DIRNAME/.." && pwd)"
    S="$ROOT/pipelines/slurm"
    BIN="${DLT_TEST_BIN:-$ROOT/bin}"
    export DLT_BIN="$BIN"
    D="$BATS_TEST_TMPDIR"
}

need_tools() {
    for t in "$@"; do [ -x "$BIN/$t" ] || skip "$t not built"; done
}

# Phantom-mode BTCV variables: tiny networks, one log row per step.
mv_for() { echo "PHANTOM=1 BIN=$BIN OUT=$1 LOG_EVERY=1 CKPT_EVERY=1000"; }

@test "the job scripts and submit.sh parse (bash -n)" {
    for f in "$S"/*.sbatch "$S"/submit.sh "$ROOT/pipelines/train.sh"; do
        run bash -n "$f"
        [ "$status" -eq 0 ] || { echo "$f: $output"; false; }
    done
}

@test "train.sbatch asks for SIGTERM before the time limit and may be requeued" {
    grep -qE '^#SBATCH --signal=B:TERM@[0-9]+' "$S/train.sbatch"
    grep -q '^#SBATCH --requeue' "$S/train.sbatch"
    grep -q '^#SBATCH --array=' "$S/train.sbatch"
}

@test "submit.sh chains train -> infer -> eval with afterok (dry run)" {
    need_tools dlt-phantom dlt-normalize
    run env DRY_RUN=1 "$S/submit.sh" $(mv_for "$D/w") -- --partition=test
    [ "$status" -eq 0 ]
    [[ "$output" == *"sbatch --parsable --array=0-11 --partition=test $S/train.sbatch"* ]]
    [[ "$output" == *"--dependency=afterok:1 --partition=test $S/infer.sbatch"* ]]
    [[ "$output" == *"--dependency=afterok:1 --partition=test $S/eval.sbatch"* ]]
    [ -s "$D/w/train.tsv" ]
}

@test "train.sbatch without a task id or with a bad one fails clearly" {
    run env -u SLURM_ARRAY_TASK_ID "$S/train.sbatch"
    [ "$status" -ne 0 ]
    [[ "$output" == *SLURM_ARRAY_TASK_ID* ]]
    run env SLURM_ARRAY_TASK_ID=12 MAKEVARS="$(mv_for "$D/w")" "$S/train.sbatch"
    [ "$status" -eq 2 ]
    [[ "$output" == *"no configuration 12"* ]]
}

@test "SIGTERM mid-run: checkpoint, requeue, resume to a model identical to an uninterrupted run" {
    need_tools dlt-phantom dlt-normalize dlt-sample dlt-train dlt-info
    make -s -C "$ROOT/pipelines/btcv" $(mv_for "$D/a") prep
    make -s -C "$ROOT/pipelines/btcv" $(mv_for "$D/b") prep
    # a fake scontrol records the requeue request
    mkdir -p "$D/fake"
    printf '#!/bin/sh\necho "$@" >> "%s/requeue"\n' "$D" > "$D/fake/scontrol"
    chmod +x "$D/fake/scontrol"
    # task 4 = unet-balanced-ce; an endless target, stopped by TERM
    PATH="$D/fake:$PATH" SLURM_JOB_ID=77 SLURM_ARRAY_JOB_ID=70 SLURM_ARRAY_TASK_ID=4 \
        MAKEVARS="$(mv_for "$D/a") STEPS=1000000" "$S/train.sbatch" > "$D/run1.log" 2>&1 &
    pid=$!
    log="$D/a/unet-balanced-ce/log.tsv"
    for i in $(seq 600); do [ "$(wc -l < "$log" 2>/dev/null || echo 0)" -ge 3 ] && break; sleep 0.1; done
    kill -TERM "$pid"
    wait "$pid" && st=0 || st=$?
    cat "$D/run1.log"
    [ "$st" -eq 75 ]
    [ -s "$D/a/unet-balanced-ce/ckpt.dltm" ]
    [ ! -e "$D/a/unet-balanced-ce/model.dltm" ]
    [ "$(cat "$D/requeue")" = "requeue 70_4" ]
    k=$("$BIN/dlt-info" --json "$D/a/unet-balanced-ce/ckpt.dltm" | sed -n 's/.*"step":"\([0-9]*\)".*/\1/p')
    [ "$k" -ge 2 ]
    n=$((k + 3))
    # the rerun (what the requeued job does) resumes and finishes
    run env SLURM_ARRAY_TASK_ID=4 MAKEVARS="$(mv_for "$D/a") STEPS=$n" "$S/train.sbatch"
    [ "$status" -eq 0 ]
    [[ "$output" == *"resuming"*"at step $k"* ]]
    [ -s "$D/a/unet-balanced-ce/model.dltm" ]
    # the same configuration without interruption gives the same bytes
    run env SLURM_ARRAY_TASK_ID=4 MAKEVARS="$(mv_for "$D/b") STEPS=$n" "$S/train.sbatch"
    [ "$status" -eq 0 ]
    cmp "$D/a/unet-balanced-ce/model.dltm" "$D/b/unet-balanced-ce/model.dltm"
    # a finished task run again does nothing
    run env SLURM_ARRAY_TASK_ID=4 MAKEVARS="$(mv_for "$D/a") STEPS=$n" "$S/train.sbatch"
    [ "$status" -eq 0 ]
    [[ "$output" == *"model.dltm exists"* ]]
}

@test "infer.sbatch segments the list and skips what exists" {
    need_tools dlt-phantom dlt-normalize dlt-sample dlt-train dlt-infer
    make -s -C "$ROOT/pipelines/btcv" $(mv_for "$D/c") prep
    run env SLURM_ARRAY_TASK_ID=0 MAKEVARS="$(mv_for "$D/c")" "$S/infer.sbatch"
    [ "$status" -eq 1 ]
    [[ "$output" == *"no trained model"* ]]
    SLURM_ARRAY_TASK_ID=0 MAKEVARS="$(mv_for "$D/c")" "$S/train.sbatch"
    run env SLURM_ARRAY_TASK_ID=0 MAKEVARS="$(mv_for "$D/c")" "$S/infer.sbatch"
    [ "$status" -eq 0 ]
    [[ "$output" == *"2 volumes segmented"* ]]
    [ -s "$D/c/unet-random-dice/pred/img0005.nii.gz" ]
    [ -s "$D/c/unet-random-dice/pred/img0006.nii.gz" ]
    run env SLURM_ARRAY_TASK_ID=0 MAKEVARS="$(mv_for "$D/c")" "$S/infer.sbatch"
    [[ "$output" == *"0 volumes segmented"* ]]
}

@test "train.sh: Ctrl-C to the whole process group stops with a checkpoint, not a crash" {
    need_tools dlt-phantom dlt-normalize dlt-sample dlt-train dlt-info
    # A shell cannot catch a signal that was ignored when it started (as in
    # a background job of a non-interactive shell): nothing to test then.
    (( 0x$(awk '/^SigIgn/ {print $2}' /proc/$$/status) & 2 )) && skip "SIGINT is ignored in this environment"
    make -s -C "$ROOT/pipelines/btcv" $(mv_for "$D/g") prep
    mapfile -t args < <(make -s -C "$ROOT/pipelines/btcv" $(mv_for "$D/g") STEPS=1000000 train-args CONFIG=fcn-random-ce)
    log="$D/g/fcn-random-ce/log.tsv"
    # set -m: the job gets a process group of its own, as under a terminal
    st=$(set -m
         "$ROOT/pipelines/train.sh" "${args[@]}" > "$D/g.log" 2>&1 &
         pg=$!
         for i in $(seq 600); do [ "$(wc -l < "$log" 2>/dev/null || echo 0)" -ge 3 ] && break; sleep 0.1; done
         kill -INT -- -"$pg"
         # a watchdog, so that a lost signal fails the test instead of hanging it
         (sleep 300; kill -TERM -- -"$pg") >/dev/null 2>&1 & dog=$!
         wait "$pg"; echo $?
         pkill -P "$dog" sleep; kill "$dog" || true) 2>/dev/null
    cat "$D/g.log"
    [ "$st" -eq 75 ]
    grep -q 'stopped at step' "$D/g.log"
    [ -s "$D/g/fcn-random-ce/ckpt.dltm" ]
}
