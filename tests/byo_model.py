"""A small model of 'a user's own', loaded by import path in tests (tests/ is on sys.path)."""

import torch
from torch import nn


class SkipNet(nn.Module):
    """conv -> conv with a skip over it -> strided conv -> classifier (6 classes)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.c3 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16, 6)

    def forward(self, x):
        a = torch.relu(self.c1(x))
        b = self.c2(a)
        c = torch.relu(b + a)
        d = torch.relu(self.c3(c))
        return self.fc(d.mean(dim=(2, 3)))


def make():
    torch.manual_seed(0)
    return SkipNet()


class Untraceable(SkipNet):
    """Data-dependent control flow: torch.fx cannot trace it (hook fallback)."""

    def forward(self, x):
        a = torch.relu(self.c1(x))
        if a.mean() > 1e9:  # data-dependent branch
            a = a * 0
        c = torch.relu(self.c2(a))
        d = torch.relu(self.c3(c))
        return self.fc(d.mean(dim=(2, 3)))


def make_untraceable():
    torch.manual_seed(0)
    return Untraceable()


class FirstRowOnly(SkipNet):
    """Broken on purpose (for the error tests): the classifier's output keeps only the
    first image of the batch (its shapes at batch 1, where it is traced, are right)."""

    def forward(self, x):
        return super().forward(x)[:1]


def make_first_row_only():
    torch.manual_seed(0)
    return FirstRowOnly()
