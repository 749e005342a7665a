#!/usr/bin/env bats
# dlt-train under mpirun: 2 ranks with batch B equal 1 process with batch
# 2B (batch norm synchronised, instance norm), resume with another rank
# count, SIGTERM to one rank, a rank that dies, rank 0 alone writes, bad
# streams. Tiny networks, one thread per rank, so each test takes seconds.
bats_require_minimum_version 1.5.0

setup() {
    T=$(mktemp -d)
    ROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
    PATH="${DLT_TEST_BIN:-$ROOT/bin}:$PATH"
    command -v mpirun >/dev/null || skip "no mpirun (make MPI=1 installs openmpi-bin)"
    dlt-info --backend -d cpu-ref --filters 2,4 --patch 8 --batch 1 | grep -q '^mpi	MPI' || skip "dlt built without MPI (MPI=0)"
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
    MPIRUN="mpirun --oversubscribe -np 2"
    MK="python3 $ROOT/tests/helpers/mkstream.py"
    DIFF="python3 $ROOT/tests/helpers/modeldiff.py"
    NET="--filters 4,8 --strides 1,2 --threads 1 -q"
    $MK --records 32 > "$T/s"
}

teardown() {
    rm -rf "$T"
}

meta() { dlt-info "$1" | awk -v k="$2" '$1 == k { print $2 }'; }
rel() { $DIFF "$1" "$2" | awk '{ print $4 }'; } # the largest difference, relative to each tensor's scale
below() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

@test "2 ranks x batch 2 = 1 process x batch 4 (batch norm synchronised, both backends; instance norm)" {
    # cpu-ref sums in a fixed order: Adam's weights agree to float rounding.
    # The fast path's sums differ a little with the batch split, and Adam's
    # first steps (g/|g|) flip the sign of near-zero gradients: SGD there.
    for cfg in "cpu-ref:adam:1e-4" "cpu:sgd:1e-3"; do
        IFS=: read -r dev opt tol <<< "$cfg"
        for norm in batch instance; do
            A="$NET --device $dev --optim $opt --norm $norm --steps 6"
            dlt-train $A --batch 4 -o "$T/one.dltm" "$T/s"
            $MPIRUN dlt-train $A --batch 2 -o "$T/two.dltm" "$T/s"
            r=$(rel "$T/one.dltm" "$T/two.dltm")
            echo "$dev $opt $norm: $r (tolerance $tol)"
            below "$r" "$tol"
        done
    done
    [ "$(meta "$T/two.dltm" ranks)" = 2 ]
    [ "$(meta "$T/two.dltm" global_batch)" = 4 ]
    [ "$(meta "$T/two.dltm" records)" = 24 ]
}

@test "--no-sync-bn: each rank's own batch statistics, which differ from the global batch's" {
    dlt-train $NET --device cpu-ref --batch 4 --steps 6 -o "$T/one.dltm" "$T/s"
    $MPIRUN dlt-train $NET --device cpu-ref --batch 2 --steps 6 --no-sync-bn -o "$T/two.dltm" "$T/s"
    r=$(rel "$T/one.dltm" "$T/two.dltm")
    echo "$r"
    ! below "$r" 1e-3
}

@test "--resume with another rank count keeps the records a step (2 ranks, then 1 process)" {
    dlt-train $NET --device cpu-ref --batch 4 --steps 8 -o "$T/full.dltm" "$T/s"
    $MPIRUN dlt-train $NET --device cpu-ref --batch 2 --steps 3 -o "$T/part.dltm" "$T/s"
    [ "$(meta "$T/part.dltm" records)" = 12 ]
    $MK --records 32 --skip 12 > "$T/tail"
    dlt-train $NET --device cpu-ref --steps 8 --resume "$T/part.dltm" -o "$T/part.dltm" "$T/tail"
    [ "$(meta "$T/part.dltm" batch)" = 4 ]
    [ "$(meta "$T/part.dltm" records)" = 32 ]
    below "$(rel "$T/full.dltm" "$T/part.dltm")" 1e-4
    # and back: 1 process to 2 ranks (the step's 4 records split 2 + 2)
    dlt-train $NET --device cpu-ref --batch 4 --steps 3 -o "$T/p1.dltm" "$T/s"
    $MPIRUN dlt-train $NET --device cpu-ref --steps 8 --resume "$T/p1.dltm" -o "$T/p1.dltm" "$T/tail"
    [ "$(meta "$T/p1.dltm" batch)" = 2 ]
    below "$(rel "$T/full.dltm" "$T/p1.dltm")" 1e-4
}

@test "rank 0 alone logs, validates and writes; the others print nothing" {
    command -v dlt-phantom >/dev/null || skip "dlt-phantom not built"
    dlt-phantom -q -n 2 --size 16,16,16 --spacing 8 -o "$T/ph"
    dlt-sample -q --list "$T/ph/list.tsv" --patch 8 --count 40 --seed 2 > "$T/ps"
    cd "$T"
    run --separate-stderr $MPIRUN dlt-train --filters 4,8 --strides 1,2 --threads 1 --device cpu-ref --batch 2 \
        --steps 6 --val "$T/ph/list.tsv" --val-every 3 --log-every 2 -l "$T/log.tsv" -o "$T/m.dltm" "$T/ps"
    [ "$status" -eq 0 ]
    [ -z "$output" ]
    [[ "$stderr" == *"2 ranks (MPI"* ]]
    [[ "$stderr" != *"rank 1"* ]]
    [ "$(grep -c 'validation mean Dice' <<< "$stderr")" = 2 ]
    [ "$(wc -l < "$T/log.tsv")" = 5 ] # header + steps 2, 3 (validated), 4, 6
    [ -f "$T/m.best.dltm" ]
    [ "$(ls "$T" | sort | tr '\n' ' ')" = "log.tsv m.best.dltm m.dltm ph ps s " ]
}

@test "SIGTERM to one rank: every rank stops at the same step, one good checkpoint, exit 0" {
    $MK --records 20000 > "$T/big"
    cd "$T"
    ( set +e; $MPIRUN sh -c 'echo $$ > pid.$OMPI_COMM_WORLD_RANK; exec dlt-train '"$NET"' --device cpu-ref --batch 2 -o m.dltm big' \
        2> err; echo $? > rc ) &
    for i in $(seq 50); do [ -s pid.1 ] && break; sleep 0.1; done
    sleep 1.5
    kill -TERM "$(cat pid.1)"
    wait
    cat err
    [ "$(cat rc)" = 0 ]
    grep -q "Resume with:" err
    grep -q "mpirun -np 2 dlt-train" err
    step=$(meta m.dltm step)
    [ "$step" -gt 0 ]
    [ "$(meta m.dltm records)" = $((step * 4)) ]
}

@test "a rank that dies ends the run non-zero within seconds; the last checkpoint stays intact" {
    $MK --records 20000 > "$T/big"
    cd "$T"
    ( set +e; $MPIRUN sh -c 'echo $$ > pid.$OMPI_COMM_WORLD_RANK; exec dlt-train '"$NET"' --device cpu-ref --batch 2 --checkpoint-every 20 -o m.dltm big' \
        2> err; echo $? > rc ) &
    for i in $(seq 100); do [ -s m.dltm ] && break; sleep 0.1; done
    [ -s m.dltm ]
    t0=$(date +%s)
    kill -KILL "$(cat pid.1)"
    wait
    [ "$(cat rc)" -ne 0 ]
    [ $(( $(date +%s) - t0 )) -le 20 ]
    dlt-info m.dltm > /dev/null
    [ "$(meta m.dltm records)" = $(( $(meta m.dltm step) * 4 )) ]
    [ "$(ls | sort | tr '\n' ' ')" = "big err m.dltm pid.0 pid.1 rc s " ]
}

@test "a diverged loss, or a bad record mid-stream, stops every rank: exit 1, no MPI_Abort, the checkpoint intact" {
    run --separate-stderr $MPIRUN dlt-train $NET --device cpu-ref --batch 2 --optim sgd --lr 1e6 --checkpoint-every 1 \
        -o "$T/d.dltm" "$T/s"
    echo "$stderr"
    [ "$status" -ne 0 ]
    [ -z "$output" ]
    [[ "$stderr" == *"the loss is nan"* ]]
    [[ "$stderr" != *MPI_ABORT* ]]
    [ "$(meta "$T/d.dltm" step)" -ge 1 ]
    $MK --records 64 --nan-at 30 > "$T/nan"
    run --separate-stderr $MPIRUN dlt-train $NET --device cpu-ref --batch 2 --checkpoint-every 2 -o "$T/m.dltm" "$T/nan"
    echo "$stderr"
    [ "$status" -ne 0 ]
    [ -z "$output" ]
    [[ "$stderr" == *"record 30"* ]]
    [[ "$stderr" != *MPI_ABORT* ]]
    [ "$(meta "$T/m.dltm" step)" -ge 2 ]
    [ "$(ls "$T" | sort | tr '\n' ' ')" = "d.dltm m.dltm nan s " ]
}

@test "a bad stream: rank 0 says so once, the run exits 1, nothing written, nothing on stdout" {
    head -c 100 "$T/s" > "$T/trunc"
    printf 'not a stream\n' > "$T/junk"
    for f in "$T/junk" "$T/missing"; do
        run --separate-stderr $MPIRUN dlt-train $NET --device cpu-ref --batch 2 -o "$T/m.dltm" "$f"
        [ "$status" -ne 0 ]
        [ -z "$output" ]
        [ "$(grep -c 'error' <<< "$stderr")" -ge 1 ]
        [[ "$stderr" == *"$f"* ]]
        [ ! -e "$T/m.dltm" ]
    done
    # a stream that ends inside a record: the error stops every rank
    $MK --records 64 | head -c 20000 > "$T/cut"
    run --separate-stderr $MPIRUN dlt-train $NET --device cpu-ref --batch 2 -o "$T/m.dltm" "$T/cut"
    [ "$status" -ne 0 ]
    [ -z "$output" ]
}

@test "pipelines/train.sh with DLT_LAUNCH=mpirun: SIGTERM, exit 75, rerun resumes bit-identically" {
    command -v dlt-phantom >/dev/null || skip "dlt-phantom not built"
    dlt-phantom -q -n 2 --size 16,16,16 --spacing 8 -o "$T/ph"
    S=(--list "$T/ph/list.tsv" --patch 8 --seed 4)
    TR=(--filters 4,8 --strides 1,2 --threads 1 --device cpu-ref -q --steps 400 --checkpoint-every 0)
    dlt-sample -q "${S[@]}" | $MPIRUN dlt-train "${TR[@]}" --batch 2 -o "$T/full.dltm"
    export DLT_BIN="${DLT_TEST_BIN:-$ROOT/bin}" DLT_LAUNCH="$MPIRUN" DLT_STOP_SIGNAL=USR1
    ( set +e; "$ROOT/pipelines/train.sh" "$T/two.dltm" -q "${S[@]}" -- "${TR[@]}" --batch 2 2> "$T/err"; echo $? > "$T/rc" ) &
    sleep 2
    pkill -TERM -f "train.sh $T/two.dltm" || true
    wait
    cat "$T/err"
    [ "$(cat "$T/rc")" = 75 ]
    step=$(meta "$T/two.dltm" step)
    [ "$step" -gt 0 ] && [ "$step" -lt 400 ]
    run "$ROOT/pipelines/train.sh" "$T/two.dltm" -q "${S[@]}" -- "${TR[@]}" --batch 2
    [ "$status" -eq 0 ]
    [ "$(meta "$T/two.dltm" step)" = 400 ]
    [ "$(meta "$T/two.dltm" records)" = 1600 ]
    cmp "$T/full.dltm" "$T/two.dltm"
}
