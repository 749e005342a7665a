#!/usr/bin/env python3
"""bench/peer_monai.py - the inference a user of the field would run today:
MONAI's sliding_window_inference over the same DLTK U-Net as the peer
(../shared/peers/torch_dltk_unet.py, imported), softmax, argmax. One
tab-separated line in the shape of the peer's `sliding` mode:

  peer_monai.py --peer PATH [--volume 128,128,128] [--patch 64] [--overlap 0.5]
                [--batch 4] [--mode constant|gaussian] [--reps 2] [--threads N]
                [--amp bf16]

--amp bf16 runs the network under torch.autocast(bfloat16), the fair peer
for dlt-infer --precision bf16.
"""
import argparse, importlib.util, os, statistics, sys, time

import torch


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--peer", required=True)
    p.add_argument("--volume", default="128,128,128")
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--overlap", type=float, default=0.5)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--mode", default="constant", choices=["constant", "gaussian"])
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--amp", default="fp32", choices=["fp32", "bf16"])
    a = p.parse_args()
    from monai.inferers import sliding_window_inference
    import monai
    spec = importlib.util.spec_from_file_location("torch_dltk_unet", a.peer)
    peer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peer)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = peer.ResUNet3D(1, 14, [16, 32, 64, 128], [1, 2, 2, 2], 1).eval()
    vol = [int(v) for v in a.volume.split(",")]
    x = torch.randn(1, 1, *vol)
    P = a.patch

    def run():
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.amp == "bf16"):
            logits = sliding_window_inference(x, (P, P, P), a.batch, model, overlap=a.overlap, mode=a.mode).float()
            return torch.softmax(logits, 1).argmax(1)
    run()  # warm-up
    ts = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        run()
        ts.append(time.perf_counter() - t0)
    m = statistics.median(ts)
    print(f"monai {monai.__version__} torch {torch.__version__}\tcpu\tthreads={torch.get_num_threads()}\tsliding"
          f"\tvolume={a.volume}\tpatch={P}\toverlap={a.overlap}\tbatch={a.batch}\tmode={a.mode}\tamp={a.amp}\ts_per_volume={m:.3f}")


if __name__ == "__main__":
    sys.exit(main())
