# Runs the authors' main.py on the CPU: .cuda() becomes a no-op, OMP_NUM_THREADS torch threads (default 1).
import os
import runpy
import sys
import types

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
AUTHORS = os.environ.get("AUTHORS_CODE", "/tmp/authors")  # a checkout of caiyu6666/DDAD-ASR
sys.path.insert(0, os.path.join(HERE, "stubs"))
sys.path.insert(0, AUTHORS)
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
torch.Tensor.cuda = lambda self, *a, **k: self
torch.nn.Module.cuda = lambda self, *a, **k: self
torch.cuda.set_device = lambda *a, **k: None
# trainer.py imports pandas only to save refinement curves; give it a stand-in during the
# import and remove it after, so sklearn (via narwhals) does not mistake it for pandas.
fake = types.ModuleType("pandas")
fake.DataFrame = dict
sys.modules["pandas"] = fake
import trainer  # noqa: E402,F401
del sys.modules["pandas"]
sys.argv = ["main.py"] + sys.argv[1:]
os.chdir(AUTHORS)
runpy.run_path(os.path.join(AUTHORS, "main.py"), run_name="__main__")
