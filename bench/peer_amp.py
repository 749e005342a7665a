#!/usr/bin/env python3
"""bench/peer_amp.py - the PyTorch peer (../shared/peers/torch_dltk_unet.py)
in mixed precision: every forward of its networks runs under
torch.autocast(bfloat16) (convolutions in bf16, weights and the loss in
fp32), which is what a PyTorch user on a bf16 CPU would turn on, and so the
fair peer for `--precision bf16`. Same command line and output as the peer:

  peer_amp.py PEER_PATH train|infer|sliding [the peer's options]
"""
import importlib.util, sys

import torch


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    spec = importlib.util.spec_from_file_location("torch_dltk_unet", sys.argv[1])
    peer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peer)
    for net in (peer.ResUNet3D, peer.ResFCN3D):
        def amp_forward(self, x, _fwd=net.forward):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return _fwd(self, x).float()
        net.forward = amp_forward
    sys.argv = [sys.argv[1]] + sys.argv[2:]
    peer.main()


if __name__ == "__main__":
    main()
