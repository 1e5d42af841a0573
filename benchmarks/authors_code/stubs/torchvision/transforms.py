# NumPy stand-ins for the three torchvision transforms the authors use (as REFERENCE.md did).
import numpy as np
import torch
from PIL import Image


class Compose:
    def __init__(self, ts): self.ts = ts
    def __call__(self, x):
        for t in self.ts:
            x = t(x)
        return x


class Resize:
    def __init__(self, size): self.size = size
    def __call__(self, img):
        if img.size == (self.size, self.size):
            return img
        return img.resize((self.size, self.size), Image.BILINEAR)


class ToTensor:
    def __call__(self, img):
        return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)[None]


class Normalize:
    def __init__(self, mean, std): self.mean, self.std = mean[0], std[0]
    def __call__(self, x): return (x - self.mean) / self.std
