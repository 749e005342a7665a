#!/usr/bin/env bats
# The build itself: CUDA detection, the summary line, install, help targets.

setup() {
    ROOT="$(cd "$BATS_TEST_DIRNAME/.." && pwd)"
}

@test "CUDA=0 builds no CUDA code and says so" {
    run make -C "$ROOT" -n -B CUDA=0 all
    [ "$status" -eq 0 ]
    [[ "$output" == *"CUDA: no"* ]]
    [[ "$output" != *"-DDLT_HAVE_CUDA"* ]]
    ! grep -q '^[^ ]*nvcc ' <<<"$output"
}

@test "CUDA_HOME pointing at an empty folder turns CUDA off" {
    empty="$BATS_TEST_TMPDIR/nocuda"
    mkdir -p "$empty"
    run make -C "$ROOT" -n CUDA_HOME="$empty" summary
    [ "$status" -eq 0 ]
    [[ "$output" == *"CUDA: no"* ]]
    [[ "$output" == *"$empty"* ]]
}

@test "CUDA is detected when nvcc and cudnn.h exist" {
    [ -x /usr/local/cuda/bin/nvcc ] && [ -e /usr/local/cuda/include/cudnn.h ] || skip "no CUDA toolkit here"
    run make -C "$ROOT" -n summary
    [ "$status" -eq 0 ]
    [[ "$output" == *"CUDA: yes"* ]]
}

@test "a cuDNN in its own folder is found through CUDNN_HOME" {
    [ -x /usr/local/cuda/bin/nvcc ] || skip "no CUDA toolkit here"
    cudnn="$BATS_TEST_TMPDIR/cudnn"
    mkdir -p "$cudnn/include" "$cudnn/lib"
    touch "$cudnn/include/cudnn.h"
    run make -C "$ROOT" -n CUDA_HOME=/usr/local/cuda CUDNN_HOME="$cudnn" summary
    [ "$status" -eq 0 ]
    [[ "$output" == *"cudnn.h in $cudnn/include/"* ]]
}

@test "make install puts tools, library, headers and man pages under PREFIX" {
    prefix="$BATS_TEST_TMPDIR/prefix"
    run make -C "$ROOT" install PREFIX="$prefix"
    [ "$status" -eq 0 ]
    for src in "$ROOT"/bin/dlt-*.c; do
        t=$(basename "$src" .c)
        [ -x "$prefix/bin/$t" ] || { echo "$t not installed"; false; }
        [ -f "$prefix/share/man/man1/$t.1" ] || { echo "$t.1 not installed"; false; }
    done
    for m in "$ROOT"/man/man5/*.5; do
        [ -e "$m" ] || continue
        [ -f "$prefix/share/man/man5/$(basename "$m")" ] || { echo "$m not installed"; false; }
    done
    [ -f "$prefix/lib/libdlt.a" ] && [ -f "$prefix/lib/libdlt.so" ]
    [ -f "$prefix/include/dlt/core.h" ]
}

@test "the installed headers stand alone: a program built against PREFIX alone runs a device" {
    prefix="$BATS_TEST_TMPDIR/prefix"
    run make -C "$ROOT" install PREFIX="$prefix"
    [ "$status" -eq 0 ]
    # only the public headers are installed, none of lib/'s internal ones
    [ -z "$(find "$prefix/include" -name '*_int.h' -o -name 'backends.h' -o -name 'fast*.h' -o -name 'ref*.h')" ]
    prog="$BATS_TEST_TMPDIR/use.c"
    { for h in "$prefix"/include/dlt/*.h; do echo "#include \"dlt/$(basename "$h")\""; done
      cat <<'EOF'
#include <stdio.h>
int main(void)
{
    dlt_backend *be;
    dlt_tensor a, b, y;
    float h[8] = {1, 2, 3, 4, 5, 6, 7, 8}, o[8];
    if (dlt_backend_create("cpu", &be)) return 2;
    int rc = dlt_tensor_alloc(be, &a, DLT_T_ACT, 1, 2, 1, 2, 2) || dlt_tensor_alloc(be, &b, DLT_T_ACT, 1, 2, 1, 2, 2) ||
             dlt_tensor_alloc(be, &y, DLT_T_ACT, 1, 2, 1, 2, 2) || dlt_tensor_upload(&a, h) || dlt_tensor_upload(&b, h) ||
             dlt_op_add_fwd(be, &a, &b, &y) || dlt_tensor_download(&y, o);
    printf("%s %g %g\n", be->name, o[0], o[7]);
    dlt_tensor_release(&a), dlt_tensor_release(&b), dlt_tensor_release(&y);
    dlt_backend_free(be);
    return rc;
}
EOF
    } > "$prog"
    flags=$(make -C "$ROOT" -s -f Makefile --eval 'print-link: ; @echo $(LDLIBS)' print-link)
    run cc -std=c11 -D_GNU_SOURCE -fopenmp -I"$prefix/include" "$prog" -o "$BATS_TEST_TMPDIR/use" \
        "$prefix/lib/libdlt.a" $flags
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    run "$BATS_TEST_TMPDIR/use"
    [ "$status" -eq 0 ]
    [ "$output" = "cpu 2 16" ]
}

@test "the benchmark programs build (they use the library's inner interfaces too)" {
    targets=()
    for f in "$ROOT"/bench/*.c; do targets+=("build/bench/$(basename "$f" .c)"); done
    run make -C "$ROOT" -s "${targets[@]}"
    [ "$status" -eq 0 ] || { echo "$output" | tail -20; false; }
}

@test "bench/peak measures the vectors DLT_CPU_ISA allows, as the capped loops use" {
    make -C "$ROOT" -s build/bench/peak
    run env DLT_THREADS=1 DLT_CPU_ISA=sse2 "$ROOT/build/bench/peak"
    [ "$status" -eq 0 ]
    [[ "$output" =~ ^peak.isa=sse2.threads=1.gflop_per_s=[0-9]+\.[0-9]$ ]]
    grep -qw avx2 /proc/cpuinfo || skip "no AVX2 here"
    run env DLT_THREADS=1 DLT_CPU_ISA=avx2 "$ROOT/build/bench/peak"
    [[ "$output" == *isa=avx2* ]]
}

@test "every tool answers --help on stdout and --version" {
    for t in "${DLT_TEST_BIN:-$ROOT/bin}"/dlt-*; do
        [ -x "$t" ] || continue
        case "$t" in *.c|*.h) continue ;; esac
        run "$t" --help
        [ "$status" -eq 0 ] || { echo "$t --help: $status"; false; }
        [ -n "$output" ]
        run "$t" --version
        [ "$status" -eq 0 ] || { echo "$t --version: $status"; false; }
    done
}

@test "every tool has a man page" {
    for src in "$ROOT"/bin/dlt-*.c; do
        [ -e "$src" ] || continue
        t=$(basename "$src" .c)
        [ -f "$ROOT/man/man1/$t.1" ] || { echo "no man page for $t"; false; }
    done
}

@test "every tool's --help and man page list the same long options" {
    bad=0
    for src in "$ROOT"/bin/dlt-*.c; do
        t=$(basename "$src" .c)
        python3 "$ROOT/tests/helpers/optcheck.py" "${DLT_TEST_BIN:-$ROOT/bin}/$t" "$ROOT/man/man1/$t.1" > "$BATS_TEST_TMPDIR/o" ||
            { echo "$t:"; cat "$BATS_TEST_TMPDIR/o"; bad=1; }
    done
    [ "$bad" -eq 0 ]
    # and the check sees a difference: a man page without one of its tool's options
    sed '/^\.BI \\-\\-poly-power/,+1d' "$ROOT/man/man1/dlt-train.1" > "$BATS_TEST_TMPDIR/t.1"
    run python3 "$ROOT/tests/helpers/optcheck.py" "${DLT_TEST_BIN:-$ROOT/bin}/dlt-train" "$BATS_TEST_TMPDIR/t.1"
    [ "$status" -eq 1 ]
    [[ "$output" == *"help-only: poly-power"* ]]
}
