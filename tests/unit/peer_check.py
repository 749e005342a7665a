#!/usr/bin/python3
"""peer_check.py DIR NET - used by test_peer.c: load the dlt model file
DIR/model.safetensors into the PyTorch peer (../shared/peers/torch_dltk_unet.py),
run the same batch (DIR/x.f32, DIR/y.i32) in training mode, one CE loss and one
Adam step (lr 1e-3, eps 1e-5), and compare with dlt's logits, loss, gradients
and weights after the step (DIR/logits.f32, DIR/grads.safetensors,
DIR/after.safetensors). Prints `KEY VALUE` lines (max normwise relative
errors); exit 2 if torch is missing."""
import json, os, struct, sys

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except Exception as e:  # noqa
    print("skip", e)
    sys.exit(2)

d, net = sys.argv[1], sys.argv[2]
shared = os.environ.get("DLT_SHARED") or os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared")
sys.path.insert(0, os.path.join(shared, "peers"))
import torch_dltk_unet as peer  # noqa: E402

torch.set_num_threads(1)


def load_st(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", (k, v["dtype"])
        s, e = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(b[8 + n + s:8 + n + e], dtype="<f4").copy()).reshape(v["shape"])
    return out, h.get("__metadata__", {})


sd, meta = load_st(os.path.join(d, "model.safetensors"))
filters = [int(v) for v in meta["filters"].split(",")]
strides = [int(v) for v in meta["strides"].split(",")]
cin, ncls = int(meta["in_channels"]), int(meta["classes"])
Net = peer.ResUNet3D if net == "unet" else peer.ResFCN3D
torch.manual_seed(0)
model = Net(cin, ncls, filters, strides, int(meta["res_units"]))
missing, unexpected = model.load_state_dict(sd, strict=False)
print("missing_other", len([k for k in missing if not k.endswith("num_batches_tracked")]))
print("unexpected", len(unexpected))
shape = [int(v) for v in open(os.path.join(d, "shape.txt")).read().split()]
N, D, H, W = shape
x = torch.from_numpy(np.fromfile(os.path.join(d, "x.f32"), dtype="<f4").reshape(N, cin, D, H, W))
y = torch.from_numpy(np.fromfile(os.path.join(d, "y.i32"), dtype="<i4").reshape(N, D, H, W).astype(np.int64))
model.train()
out = model(x)
loss = F.cross_entropy(out, y)
loss.backward()


def rel(a, b):
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).abs().max() / max(b.abs().max().item(), 1e-12))


ours = torch.from_numpy(np.fromfile(os.path.join(d, "logits.f32"), dtype="<f4").reshape(out.shape))
print("logits", rel(ours, out))
print("loss", abs(float(open(os.path.join(d, "loss.txt")).read()) - loss.item()) / abs(loss.item()))
grads, _ = load_st(os.path.join(d, "grads.safetensors"))
params = dict(model.named_parameters())
print("grad_tensors", len(grads), len(params))
print("grads", max(rel(grads[k], params[k].grad) for k in params))
opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-5)
opt.step()
after, _ = load_st(os.path.join(d, "after.safetensors"))
sdict = model.state_dict()
print("weights", max(rel(after[k], sdict[k]) for k in after))
print("running", max(rel(after[k], sdict[k]) for k in after if "running" in k))
