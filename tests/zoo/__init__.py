"""The zoo: small, fast builders of real model families, made here with no downloads.

Each builder returns a :class:`Member`: the model as a researcher holds it (a compiled
wrapper stays compiled), its optimizers, and ``step()``, one training step written the way
that family is usually trained (a GAN's two optimizers with the generator's loss flowing
back through the discriminator, BatchNorm in train mode, an LSTM's tuple output, a
transformer's tuple attention output, a BERT from ``BertConfig``). The capture tests record
each one and check every snapshot against copies they take themselves; the scene tests
render every registered scene on each recording (``tests/test_zoo.py``).

Kept small (a step is milliseconds) so that the whole zoo runs in the fast suite; a member
whose import is slow (transformers) is built only when asked for.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Callable

import torch
from torch import nn

__all__ = ["Member", "BUILDERS", "STEPS", "build", "record", "lightning_trainer"]

#: training steps of a zoo recording (snapshots at steps 0 .. STEPS)
STEPS = 4


@dataclasses.dataclass
class Member:
    """One zoo model, ready to train."""

    name: str
    model: nn.Module  # what the user passes to Recorder (a compiled wrapper included)
    optimizers: list[torch.optim.Optimizer]
    step: Callable[[], float]  # one training step (every optimizer), returns the loss
    #: Recorder keyword arguments this family needs beyond the zoo's common ones
    recorder: dict = dataclasses.field(default_factory=dict)

    @property
    def module(self) -> nn.Module:
        """The module whose parameter names the series carry (a compiled model's original)."""
        return getattr(self.model, "_orig_mod", self.model)


def _classify(model: nn.Module, x: torch.Tensor, y: torch.Tensor, opt, out=lambda o: o):
    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(out(model(x)), y)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def mlp(seed: int = 0) -> Member:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = torch.randn(32, 6), torch.randint(3, (32,))
    return Member("mlp", model, [opt], _classify(model, x, y, opt))


def cnn_bn(seed: int = 0) -> Member:
    """A small CNN with BatchNorm (running statistics as buffers) and a pooled head."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 3),
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(3, (16,))
    return Member("cnn_bn", model, [opt], _classify(model, x, y, opt), {"buffers": "*running_*"})


class _LSTMClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.lstm = nn.LSTM(8, 12, num_layers=2, batch_first=True)  # output, (h_n, c_n)
        self.head = nn.Linear(12, 2)

    def forward(self, tokens):
        out, (h, _) = self.lstm(self.embed(tokens))
        return self.head(h[-1])


def lstm(seed: int = 0) -> Member:
    torch.manual_seed(seed)
    model = _LSTMClassifier()
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-2)
    x, y = torch.randint(20, (8, 7)), torch.randint(2, (8,))
    return Member("lstm", model, [opt], _classify(model, x, y, opt))


class _Encoder(nn.Module):
    """A transformer encoder classifier: 2 layers of ``nn.TransformerEncoderLayer`` (whose
    ``self_attn`` returns the tuple ``(output, weights)``)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(30, 16)
        layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(16, 4)

    def forward(self, tokens):
        return self.head(self.encoder(self.embed(tokens)).mean(1))


def transformer(seed: int = 0) -> Member:
    torch.manual_seed(seed)
    model = _Encoder()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    x, y = torch.randint(30, (8, 10)), torch.randint(4, (8,))
    return Member("transformer", model, [opt], _classify(model, x, y, opt))


class _GAN(nn.Module):
    def __init__(self):
        super().__init__()
        self.G = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
        self.D = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))


def gan(seed: int = 0) -> Member:
    """A DCGAN-style loop on 2-D points: D steps, then G's loss backpropagates through D
    (adding into D's ``.grad``, which is only zeroed at D's next step) and G steps."""
    torch.manual_seed(seed)
    model = _GAN()
    opt_d = torch.optim.Adam(model.D.parameters(), lr=2e-3, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(model.G.parameters(), lr=2e-3, betas=(0.5, 0.999))
    real = torch.randn(64, 2) * 0.3 + torch.tensor([1.0, -0.5])
    z = torch.randn(64, 4)
    bce = nn.functional.binary_cross_entropy_with_logits
    ones, zeros = torch.ones(64, 1), torch.zeros(64, 1)

    def step() -> float:
        opt_d.zero_grad()
        fake = model.G(z)
        loss_d = bce(model.D(real), ones) + bce(model.D(fake.detach()), zeros)
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad()
        loss_g = bce(model.D(fake), ones)
        loss_g.backward()  # adds into D's gradients too
        opt_g.step()
        return loss_g.item()

    derived = {"samples": lambda m: m.G(z)}  # (64, 2): the generated points
    return Member("gan", model, [opt_d, opt_g], step, {"derived": derived})


def bert(seed: int = 0) -> Member:
    """A tiny BERT for masked language modelling, from ``BertConfig`` (no download)."""
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    model = BertForMaskedLM(config)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    tokens = torch.randint(40, (4, 12))
    labels = torch.where(torch.rand(4, 12) < 0.3, tokens, torch.full_like(tokens, -100))
    labels[:, 0] = tokens[:, 0]  # at least one masked position per row

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = model(input_ids=tokens, labels=labels).loss
        loss.backward()
        opt.step()
        return loss.item()

    return Member("bert", model, [opt], step)


def compiled(seed: int = 0) -> Member:
    """An MLP under ``torch.compile`` (the eager backend: Dynamo traces, nothing is built)."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(5, 12), nn.GELU(), nn.Linear(12, 2))
    model = torch.compile(net, backend="eager")
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    x, y = torch.randn(16, 5), torch.randint(2, (16,))
    return Member("compiled", model, [opt], _classify(model, x, y, opt))


class _ZeroWidth(nn.Module):
    """A model with a zero-width branch (a pruned head, a disabled adapter of width 0)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 8)
        self.pruned = nn.Linear(8, 0)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        h = torch.relu(self.body(x))
        return self.head(h) + self.pruned(h).sum()


def zero_width(seed: int = 0) -> Member:
    torch.manual_seed(seed)
    with _quiet_init():
        model = _ZeroWidth()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(16, 4), torch.randint(2, (16,))
    return Member("zero_width", model, [opt], _classify(model, x, y, opt))


def conv3d(seed: int = 0) -> Member:
    """A 3-D convolution (a video or volume model's first layer): rank-5 kernels."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv3d(2, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(4, 2)
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(4, 2, 5, 5, 5), torch.randint(2, (4,))
    return Member("conv3d", model, [opt], _classify(model, x, y, opt))


class _quiet_init:
    """Silence torch's "Initializing zero-element tensors is a no-op" for the zero-width layer."""

    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.filterwarnings("ignore", "Initializing zero-element tensors")

    def __exit__(self, *exc):
        self._catch.__exit__(*exc)


BUILDERS: dict[str, Callable[[int], Member]] = {
    "mlp": mlp,
    "cnn_bn": cnn_bn,
    "lstm": lstm,
    "transformer": transformer,
    "gan": gan,
    "bert": bert,
    "compiled": compiled,
    "zero_width": zero_width,
    "conv3d": conv3d,
}


def build(name: str, seed: int = 0) -> Member:
    """The zoo member ``name``, freshly initialised from ``seed``."""
    return BUILDERS[name](seed)


def record(member: Member, path) -> tuple:
    """Record ``member`` for :data:`STEPS` steps to ``path`` as a trainer class would (a
    Recorder made, trained, ``close()``d) with parameters, buffers, gradients, summaries and
    activations; return ``(recording, weights, grads)``: the loaded recording, copies of
    every parameter and buffer after each step (``weights[step][name]``), and the gradients
    each optimizer saw just before its own step (``grads[step][name]``, from step pre-hooks
    registered beside the recorder's)."""
    from dynamics import Recorder, load
    from dynamics.recorder import RecorderWarning

    module = member.module
    names = {id(p): n for n, p in module.named_parameters()}
    used: dict[str, torch.Tensor] = {}

    def saw(optimizer, args, kwargs):  # the gradients this optimizer is about to use
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    used[names[id(p)]] = p.grad.detach().clone()

    handles = [opt.register_step_pre_hook(saw) for opt in member.optimizers]

    def state():
        return {
            n: t.detach().clone() for n, t in [*module.named_parameters(), *module.named_buffers()]
        }

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RecorderWarning)  # the zero-width member says so
        rec = Recorder(
            member.model,
            member.optimizers,
            path=path,
            grads=True,
            summaries="*",
            summary_grads=True,
            activations="*",
            **member.recorder,
        )
        weights, grads = {0: state()}, {}
        for step in range(1, STEPS + 1):
            used.clear()
            rec.log(loss=member.step())
            weights[step], grads[step] = state(), dict(used)
        rec.close()
    for h in handles:
        h.remove()
    return load(path), weights, grads


def lightning_trainer(pl, callbacks, *, max_steps, root, checkpointing=False, **kwargs):
    """A quiet CPU Lightning Trainer for tests (``pl``: the ``lightning.pytorch`` module)."""
    return pl.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=checkpointing,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        callbacks=callbacks,
        **kwargs,
    )
