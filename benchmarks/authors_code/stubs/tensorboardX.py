class SummaryWriter:  # stub: the authors log to TensorBoard; not needed to reproduce numbers
    def __init__(self, *a, **k): pass
    def add_scalar(self, *a, **k): pass
    def close(self): pass
