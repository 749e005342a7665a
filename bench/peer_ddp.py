#!/usr/bin/env python3
"""bench/peer_ddp.py - the PyTorch peer (../shared/peers/torch_dltk_unet.py)
trained data-parallel as a PyTorch user would on CPUs: N processes
(torch.multiprocessing), DistributedDataParallel over gloo, the global batch
split over them. Batch norm stays per process: PyTorch's SyncBatchNorm runs
on GPUs only. Prints, from rank 0, one line in bench_dist's shape: the
median step time and the median time of one gloo allreduce of all
gradients (flat float32 tensor).

  peer_ddp.py PEER_PATH [--ranks 2] [--threads 1] [--batch 2] [--patch 64] [--steps 5] [--warmup 2] [--reps 20]
"""
import argparse, importlib.util, os, statistics, sys, time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F


def run(rank, a):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(a.port)
    torch.set_num_threads(a.threads)
    dist.init_process_group("gloo", rank=rank, world_size=a.ranks)
    spec = importlib.util.spec_from_file_location("torch_dltk_unet", a.peer)
    peer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peer)
    torch.manual_seed(0)
    model = peer.ResUNet3D(1, 14, [16, 32, 64, 128], [1, 2, 2, 2], 1)
    ddp = torch.nn.parallel.DistributedDataParallel(model) if a.ranks > 1 else model
    opt = torch.optim.Adam(ddp.parameters(), lr=1e-3, eps=1e-5)
    b, P = a.batch // a.ranks, a.patch
    torch.manual_seed(1 + rank)
    x = torch.randn(b, 1, P, P, P)
    y = torch.randint(0, 14, (b, P, P, P))
    ts = []
    for s in range(-a.warmup, a.steps):
        dist.barrier()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(ddp(x), y).backward()
        opt.step()
        if s >= 0:
            ts.append(time.perf_counter() - t0)
    n = sum(q.numel() for q in model.parameters())
    flat = torch.zeros(n)
    ar = []
    for k in range(-2, a.reps):
        t0 = time.perf_counter()
        dist.all_reduce(flat)
        if k >= 0:
            ar.append(time.perf_counter() - t0)
    if rank == 0:
        m, r = statistics.median(ts), statistics.median(ar)
        bw = 2.0 * (a.ranks - 1) / a.ranks * 4.0 * n / r / 1e9 if a.ranks > 1 else 0.0
        print(f"torch {torch.__version__} ddp-gloo\tranks={a.ranks}\tthreads={a.threads}\tbatch={a.batch}\tpatch={P}"
              f"\tsync_bn=0\tparams={n}\ts_per_step={m:.4f}\tpatches_per_s={a.batch / m:.3f}"
              f"\tallreduce_ms={r * 1e3:.3f}\tbusbw_gb_per_s={bw:.2f}", flush=True)
    dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("peer")
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--port", type=int, default=29500 + os.getpid() % 1000)
    a = p.parse_args()
    if a.batch % a.ranks:
        sys.exit("peer_ddp.py: --batch must split over --ranks")
    mp.spawn(run, args=(a,), nprocs=a.ranks)


if __name__ == "__main__":
    main()
