# A_rec and A_intra of the authors' NDM members with the formulas of their test.py evaluate()
# (AE branch): rec = mean (x - mu_b)^2, intra = mean std_k(b_rec) (unbiased); sklearn AUC/AP.
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
AUTHORS = os.environ.get("AUTHORS_CODE", "/tmp/authors")  # a checkout of caiyu6666/DDAD-ASR
sys.path.insert(0, os.path.join(HERE, "stubs"))
sys.path.insert(0, AUTHORS)
torch.set_num_threads(2)
torch.Tensor.cuda = lambda self, *a, **k: self
torch.nn.Module.cuda = lambda self, *a, **k: self
from sklearn import metrics  # noqa: E402

from models.autoencoder import AE  # noqa: E402
from models.utils import get_loader  # noqa: E402

out_dir = sys.argv[1]
module_b = []
for f in sorted(os.listdir(os.path.join(out_dir, "b")), key=lambda x: int(x.split(".")[0])):
    m = AE(latent_size=16, multiplier=1, unc=False, img_size=64)
    m.load_state_dict(torch.load(os.path.join(out_dir, "b", f), map_location="cpu"))
    module_b.append(m.eval())
loader = get_loader(dataset="brain", dtype="test", bs=1, img_size=64, workers=1)
y, rec, intra = [], [], []
with torch.no_grad():
    for x, label, _ in loader:
        b_rec = torch.cat([m(x).squeeze(0) for m in module_b])
        mu_b = torch.mean(b_rec, dim=0)
        rec.append(((x - mu_b) ** 2).mean().item())
        intra.append(torch.std(b_rec, dim=0).mean().item())
        y.append(label.item())
res = {"members": len(module_b),
       "auc": {"rec": metrics.roc_auc_score(y, rec), "intra": metrics.roc_auc_score(y, intra)},
       "ap": {"rec": metrics.average_precision_score(y, rec),
              "intra": metrics.average_precision_score(y, intra)}}
print(json.dumps(res))
