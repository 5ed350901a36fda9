"""The two networks and the training recipe that goes with each.

A recipe is plain data: it is printed at the start of a run and saved with the
run's results, so every number can be traced to the settings that made it.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class BaselineNet(nn.Module):
    """The network of Hensman & Masko (2015), after Caffe's CIFAR-10 example.

    Three 5x5 convolutions (32, 32, 64 channels) with max pooling after the
    first and average pooling after the second and third, then one fully
    connected layer. Pooling rounds up as Caffe does: 32 -> 16 -> 8 -> 4.
    """

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 32, 5, padding=2)
        self.conv3 = nn.Conv2d(32, 64, 5, padding=2)
        self.fc = nn.Linear(64 * 4 * 4, num_classes)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 3, 2, ceil_mode=True))
        x = F.avg_pool2d(F.relu(self.conv2(x)), 3, 2, ceil_mode=True)
        x = F.avg_pool2d(F.relu(self.conv3(x)), 3, 2, ceil_mode=True)
        return self.fc(torch.flatten(x, 1))

    def classifier(self):
        return self.fc


def caffe_init_(model):
    """Caffe's CIFAR-10 example initialisation: Gaussian weights with standard
    deviation 1e-4 for the first convolution, 1e-2 for the others, 0.1 for
    the fully connected layer; biases at zero. Such a small first layer can
    leave training stuck predicting one class, which is why it is offered."""
    stds = {model.conv1: 1e-4, model.conv2: 1e-2, model.conv3: 1e-2,
            model.fc: 1e-1}
    with torch.no_grad():
        for layer, std in stds.items():
            layer.weight.normal_(0.0, std)
            layer.bias.zero_()


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (He et al. 2016)."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1,
                               bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Root(nn.Module):
    """Aggregation node: concatenate the inputs, 1x1 convolution, BN, ReLU."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, inputs):
        return F.relu(self.bn(self.conv(torch.cat(inputs, 1))))


class Tree(nn.Module):
    """Hierarchical aggregation of ``level`` levels.

    A tree of level 1 is two blocks in a row whose outputs a root merges. A
    tree of level L > 1 feeds the input through a projection block and
    through subtrees of levels L-1 down to 1, then two more blocks, and its
    root merges all L + 2 of those outputs.
    """

    def __init__(self, in_channels, out_channels, level=1, stride=1):
        super().__init__()
        self.subtrees = nn.ModuleList(
            Tree(in_channels if i == 0 else out_channels, out_channels,
                 sublevel, stride if i == 0 else 1)
            for i, sublevel in enumerate(range(level - 1, 0, -1)))
        first_in = out_channels if level > 1 else in_channels
        self.projection = (BasicBlock(in_channels, out_channels, stride)
                           if level > 1 else None)
        self.left = BasicBlock(first_in, out_channels,
                               1 if level > 1 else stride)
        self.right = BasicBlock(out_channels, out_channels, 1)
        self.root = Root((level + 2 if level > 1 else 2) * out_channels,
                         out_channels)

    def forward(self, x):
        outputs = [] if self.projection is None else [self.projection(x)]
        for subtree in self.subtrees:
            x = subtree(x)
            outputs.append(x)
        x = self.left(x)
        outputs.append(x)
        outputs.append(self.right(x))
        return self.root(outputs)


class DLA(nn.Module):
    """Deep Layer Aggregation (Yu et al. 2018), in the CIFAR-10 form that the
    pytorch-cifar collection made widely used: 16,291,386 parameters."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(
            _conv_bn_relu(3, 16), _conv_bn_relu(16, 16),
            _conv_bn_relu(16, 32))
        self.trees = nn.Sequential(
            Tree(32, 64, level=1, stride=1),
            Tree(64, 128, level=2, stride=2),
            Tree(128, 256, level=2, stride=2),
            Tree(256, 512, level=1, stride=2))
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.trees(self.stem(x))
        x = F.adaptive_avg_pool2d(x, 1)
        return self.linear(torch.flatten(x, 1))

    def classifier(self):
        return self.linear


def _conv_bn_relu(in_channels, out_channels):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False),
        nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


# Each recipe: optimiser settings, schedule, and how inputs are prepared.
# "step" divides the learning rate by 10 for the last ``drop_fraction`` of the
# steps (Caffe's example: 8 epochs at 0.001, then 2 at 0.0001); "cosine"
# anneals it to zero over the run. "input" is "mean-image" for pixels on the
# 0-255 scale minus the mean training image (the scale that lr 0.001 was
# tuned for), or "per-channel" for per-channel standardisation.
RECIPES = {
    "baseline": {
        "lr": 0.001, "momentum": 0.9, "weight_decay": 0.004,
        "batch_size": 100, "epochs": 10,
        "schedule": "step", "drop_fraction": 0.2,
        "input": "mean-image", "augment": False,
    },
    "dla": {
        "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4,
        "batch_size": 128, "epochs": 30,
        "schedule": "cosine",
        "input": "per-channel", "augment": True,
    },
}

INITS = ("default", "caffe")


def build_model(name, num_classes=10, init="default"):
    """A new network, initialised from the current torch random state."""
    if name == "baseline":
        model = BaselineNet(num_classes)
        if init == "caffe":
            caffe_init_(model)
    elif name == "dla":
        if init != "default":
            raise ValueError("--init caffe applies to the baseline model only")
        model = DLA(num_classes)
    else:
        raise ValueError(f"unknown model {name!r}; choose from "
                         f"{', '.join(RECIPES)}")
    return model


def learning_rate(recipe, step, total_steps):
    """The learning rate at a given optimiser step: a pure function of the
    step, so a resumed run follows the same schedule."""
    lr = recipe["lr"]
    if recipe["schedule"] == "step":
        drop_at = round(total_steps * (1 - recipe["drop_fraction"]))
        return lr if step < drop_at else lr / 10
    if recipe["schedule"] == "cosine":
        return 0.5 * lr * (1 + math.cos(math.pi * step / total_steps))
    raise ValueError(f"unknown schedule {recipe['schedule']!r}")


def parameter_groups(model, bias_lr_mult=1.0):
    """Optimiser groups; Caffe's example trains biases at twice the rate."""
    biases = [p for n, p in model.named_parameters() if n.endswith("bias")]
    others = [p for n, p in model.named_parameters()
              if not n.endswith("bias")]
    return [{"params": others, "lr_mult": 1.0},
            {"params": biases, "lr_mult": bias_lr_mult}]


class SGD:
    """Stochastic gradient descent with momentum and L2 weight decay, step
    for step what ``torch.optim.SGD`` computes (``v = m * v + g + wd * w``,
    ``w -= lr * v``; the first step sets ``v = g + wd * w``).

    Our own because ``torch.optim`` imports torch's compiler stack
    (``torch._dynamo``) when the first optimiser is built: 0.9 s of every
    start on a CPU, half of what a run waits before its first step. The
    caller sets each group's ``lr`` before every step. The tests check that
    the two agree bit for bit.
    """

    def __init__(self, groups, lr, momentum, weight_decay):
        self.param_groups = [dict(group, lr=lr, momentum=momentum,
                                  weight_decay=weight_decay)
                             for group in groups]
        self.buffers = [[None] * len(group["params"])
                        for group in self.param_groups]

    def zero_grad(self, set_to_none=True):
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    @torch.no_grad()
    def step(self):
        for group, buffers in zip(self.param_groups, self.buffers):
            live = [i for i, p in enumerate(group["params"])
                    if p.grad is not None]
            if not live:
                continue
            params = [group["params"][i] for i in live]
            grads = [p.grad for p in params]
            if group["weight_decay"]:
                grads = torch._foreach_add(grads, params,
                                           alpha=group["weight_decay"])
            if group["momentum"]:
                if all(buffers[i] is not None for i in live):
                    velocity = [buffers[i] for i in live]
                    torch._foreach_mul_(velocity, group["momentum"])
                    torch._foreach_add_(velocity, grads)
                else:
                    velocity = []
                    for i, grad in zip(live, grads):
                        if buffers[i] is None:
                            buffers[i] = grad.clone()
                        else:
                            buffers[i].mul_(group["momentum"]).add_(grad)
                        velocity.append(buffers[i])
                grads = velocity
            torch._foreach_add_(params, grads, alpha=-group["lr"])

    def state_dict(self):
        return {"momentum_buffers": [list(b) for b in self.buffers]}

    def load_state_dict(self, state):
        sizes = [len(group["params"]) for group in self.param_groups]
        saved = ([len(group["params"]) for group in state["param_groups"]]
                 if "state" in state else
                 [len(b) for b in state["momentum_buffers"]])
        if saved != sizes:
            raise ValueError(f"optimiser state for parameter groups of sizes "
                             f"{saved}, not {sizes}")
        if "state" in state:
            # saved by torch.optim.SGD: buffers numbered across the groups
            numbered = iter(range(sum(len(b) for b in self.buffers)))
            self.buffers = [
                [state["state"].get(next(numbered), {})
                 .get("momentum_buffer") for _ in group]
                for group in self.buffers]
        else:
            self.buffers = [list(b) for b in state["momentum_buffers"]]


def count_parameters(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
