"""The probe (dynamics.capture.Probe), linear CKA (dynamics.similarity) and the
representations scene: exact outputs on the zoo, a run left bit for bit as it was, the size
bound, CKA against a direct numpy implementation, a projection that cannot flicker."""

import warnings

import numpy as np
import pytest
import torch
from zoo import STEPS, build

from dynamics import Recorder, load
from dynamics.capture import Probe, every
from dynamics.recording import Recording, Series
from dynamics.similarity import cka_over_training, linear_cka
from scenes.base import RenderOptions
from scenes.representations import (
    Projection,
    RepresentationsScene,
    RepresentationsSceneConfig,
    procrustes_points,
)

DRAFT = RenderOptions.preset_for("draft", progress=False, workers=1)

#: Per zoo member: a probe batch of its input's shape, and the modules probed.
PROBES = {
    "mlp": (lambda: torch.randn(10, 6), ["0", "1", "2", "4"]),
    "cnn_bn": (lambda: torch.randn(6, 1, 8, 8), ["1", "2", "5", "8"]),
    "transformer": (
        lambda: torch.randint(30, (5, 10)),
        ["embed", "encoder.layers.0", "encoder.layers.1.self_attn", "head"],
    ),
}


def recorded_probe(name, path=None, **probe):
    """The zoo member ``name`` trained for STEPS steps with a probe, and the probe batch."""
    member = build(name)
    torch.manual_seed(1)
    make, modules = PROBES[name]
    x = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = Recorder(
            member.model, member.optimizers, path=path, **member.recorder,
            quantities=[Probe(x, torch.arange(len(x)) % 3, modules=modules, **probe)],
        )  # fmt: skip
        for _ in range(STEPS):
            rec.log(loss=member.step())
        rec.close()
    return (load(path) if path else rec.recording), x


@pytest.mark.parametrize("name", sorted(PROBES))
def test_a_recorded_probe_output_is_the_modules_output_from_the_recorded_parameters(name):
    """Each snapshot of ``probe/<module>`` against the module's output for the probe batch
    in a fresh copy of the model loaded with that step's recorded parameters (and
    BatchNorm's recorded running statistics), in eval mode, with gradients on (another
    code path than the probe's no_grad pass: a transformer's fused fast path is off)."""
    recording, x = recorded_probe(name)
    probed = {s.source: k for k, s in recording.of_kind("probe").items()}
    assert set(PROBES[name][1]) <= {src.split("[")[0] for src in probed}
    np.testing.assert_array_equal(recording["probe/inputs"].values[0], x.numpy())
    np.testing.assert_array_equal(recording["probe/labels"].values[0], np.arange(len(x)) % 3)
    fresh = build(name).module.eval()
    modules = dict(fresh.named_modules())
    state_names = [k for k, s in recording.items() if s.kind in ("parameter", "buffer")]
    got = {}

    def keep(module, args, out):  # returns None: the output stays the module's
        got.setdefault(module, out[0] if isinstance(out, tuple) else out)

    hooked = {source.split("[")[0] for source in probed}
    for i, step in enumerate(recording[next(iter(probed.values()))].steps.tolist()):
        state = {k: torch.as_tensor(np.array(recording[k].at(step))) for k in state_names}
        missing = fresh.load_state_dict(state, strict=False).missing_keys
        assert all(k.endswith("num_batches_tracked") for k in missing), missing
        got.clear()
        handles = [modules[m].register_forward_hook(keep) for m in hooked]
        fresh(x)
        for h in handles:
            h.remove()
        for source, key in probed.items():
            expected = got[modules[source.split("[")[0]]].detach().numpy()
            np.testing.assert_allclose(
                recording[key].values[i], expected, rtol=1e-5, atol=1e-6, err_msg=f"{key} {step}"
            )
    assert recording[next(iter(probed.values()))].steps.tolist() == list(range(STEPS + 1))


def test_the_mlp_probe_equals_a_hand_computed_first_layer():
    recording, x = recorded_probe("mlp")
    for i, step in enumerate(recording["probe/0"].steps.tolist()):
        w, b = recording["0.weight"].at(step), recording["0.bias"].at(step)
        expected = x.numpy().astype(np.float64) @ w.T + b
        np.testing.assert_allclose(recording["probe/0"].values[i], expected, rtol=1e-5, atol=1e-6)


class Jitter(torch.nn.Module):
    """Noise drawn from the global generator in every mode (a stochastic layer): the
    probe's pass draws too, and must give the generator back as it found it."""

    def forward(self, x):
        return x + 0.01 * torch.randn_like(x)


def _train(probe: bool, steps: int = 6):
    """A model with BatchNorm and dropout trained on batches drawn from the global
    generator each step, recorded with activations (and a probe): the losses, the final
    state, the generator's state, each module's mode, the recording."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(), Jitter(),
        torch.nn.Dropout(0.3), torch.nn.Linear(16, 3), torch.nn.Dropout(0.1),
    )  # fmt: skip
    model[6].eval()  # a module the user keeps in eval mode stays so
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    extra = [Probe(torch.randn(12, 4), modules="*", schedule=every(2))] if probe else []
    losses = []
    torch.manual_seed(1)  # the probe batch above is drawn before: the same stream after
    with Recorder(model, opt, buffers="*", activations="*", quantities=extra) as rec:
        for _ in range(steps):
            x, y = torch.randn(32, 4), torch.randint(3, (32,))
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    state = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    return losses, state, torch.get_rng_state(), modes, rec.recording


def test_training_is_bit_identical_with_and_without_the_probe():
    """Dropout and a noise layer (drawing from the global generator), BatchNorm (running
    statistics), a module kept in eval mode: every loss, every weight and buffer, the
    generator and the recorded activation summaries are the same bits with the probe as
    without it."""
    losses, state, rng, modes, plain = _train(probe=False)
    losses_p, state_p, rng_p, modes_p, probed = _train(probe=True)
    assert losses == losses_p
    assert state.keys() == state_p.keys()
    for k in state:
        assert torch.equal(state[k], state_p[k]), k
    assert torch.equal(rng, rng_p)
    assert modes == modes_p and modes[-1] is False and all(modes[:-1])
    for key in plain.keys():  # parameters, buffers, activation summaries (not of the probe pass)
        np.testing.assert_array_equal(plain[key].values, probed[key].values, err_msg=key)
        np.testing.assert_array_equal(plain[key].steps, probed[key].steps, err_msg=key)
    assert probed["probe/1"].steps.tolist() == [0, 2, 4, 6]
    assert probed.metadata["recorder"]["probe"]["examples"] == 12


def test_a_probe_larger_than_the_limit_is_refused_with_the_estimate_and_the_remedy():
    model = torch.nn.Sequential(torch.nn.Linear(10, 100), torch.nn.Tanh())
    x = torch.randn(64, 10)
    with pytest.raises(ValueError) as err:
        Recorder(model, quantities=[Probe(x, modules="*", max_bytes=40_000)])
    message = str(err.value)
    assert "\n" not in message
    assert "50.0 KiB in float32" in message  # 2 outputs x 64 x 100 x 4 bytes
    assert "dtype='float16' (25.0 KiB)" in message and "39.1 KiB per snapshot" in message
    rec = Recorder(model, quantities=[Probe(x, modules="*", max_bytes=40_000, dtype="float16")])
    assert rec.recording["probe/0"].values.dtype == np.float16
    expected = model[0](x).detach().numpy()
    np.testing.assert_allclose(rec.recording["probe/0"].values[0], expected, rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match="no module matches modules=\\['enc\\*'\\]"):
        Probe(x, modules="enc*").setup(model)
    with pytest.raises(ValueError, match="labels must have shape \\(64,\\)"):
        Probe(x, torch.zeros(3), modules="*")


def test_the_default_limit_is_64_mib_per_snapshot():
    model = torch.nn.Sequential(torch.nn.Linear(1, 300_000))
    with pytest.raises(ValueError, match="73.2 MiB in float32 .* limit of 64.0 MiB"):
        Recorder(model, quantities=[Probe(torch.randn(64, 1), modules="*")], params=None)


class _Tagger(torch.nn.Module):
    """Called with keyword arguments (as a Hugging Face model is), an LSTM inside."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)
        self.lstm = torch.nn.LSTM(4, 5, batch_first=True)  # output, (h_n, c_n)
        self.unused = torch.nn.Linear(5, 5)

    def forward(self, tokens, scale=1.0):
        return self.lstm(self.embed(tokens) * scale)[0]


def test_keyword_inputs_tuple_outputs_and_what_is_not_recorded_says_why():
    model = _Tagger()
    tokens = torch.randint(10, (6, 7))
    probe = Probe({"tokens": tokens, "scale": 2.0}, modules=["lstm", "unused"])
    with pytest.warns(UserWarning) as caught:
        rec = Recorder(model, params=None, quantities=[probe])
    said = " ".join(str(w.message) for w in caught)
    assert "probe/lstm[1][0] (shape (1, 6, 5), not (6, ...))" in said
    assert "probe/unused (the module was not called)" in said
    recording = rec.recording
    assert recording.of_kind("probe").keys() == {"probe/lstm[0]"}
    assert recording["probe/inputs[tokens]"].values.shape == (1, 6, 7)
    with torch.no_grad():
        expected = model(tokens, 2.0).numpy()
    np.testing.assert_allclose(recording["probe/lstm[0]"].values[0], expected, rtol=1e-6)
    rec.capture()  # a capture asked for by hand runs the probe too; the batch stays one
    assert len(rec.recording["probe/lstm[0]"]) == 2
    assert len(rec.recording["probe/inputs[tokens]"]) == 1


def test_a_resumed_recording_keeps_the_probe_batch_once_and_the_outputs_after_the_restart(
    tmp_path,
):
    """Resuming from a checkpoint (Recorder(resume=..., step=...)) keeps the probe batch the
    first attempt recorded at step 0: it is not recorded again at the restart's step (it was,
    at step 4, before the fix), and the outputs go on at their schedule."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    x, labels = torch.randn(5, 2), torch.arange(5)

    # the first attempt runs 6 steps; the second resumes from a checkpoint at step 4
    for steps, resume in ((6, {}), (4, {"resume": True, "step": 4})):
        probe = Probe(x, labels, modules="0")
        rec = Recorder(model, path=tmp_path / "r.rec", schedule=2, quantities=[probe], **resume)
        with rec:
            for _ in range(steps):
                with torch.no_grad():
                    model[0].weight += 0.01
                rec.tick()
    r = load(tmp_path / "r.rec")
    np.testing.assert_array_equal(r["probe/inputs"].steps, [0])
    np.testing.assert_array_equal(r["probe/labels"].steps, [0])
    np.testing.assert_array_equal(r["probe/inputs"].values[0], x.numpy())
    np.testing.assert_array_equal(r["probe/labels"].values[0], labels.numpy())
    np.testing.assert_array_equal(r["probe/0"].steps, [0, 2, 4, 6, 8])
    with torch.no_grad():  # the last snapshot is the resumed model's own first layer
        np.testing.assert_allclose(r["probe/0"].values[-1], model[0](x).numpy(), rtol=1e-6)
    assert len(r.metadata["resumed"]) == 1


# -- CKA ------------------------------------------------------------------------------------


def direct_cka(x, y):
    """Kornblith et al. (2019), eq. for linear CKA, written out: centre the columns, then
    ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)."""
    x = np.asarray(x, float).reshape(len(x), -1)
    y = np.asarray(y, float).reshape(len(y), -1)
    x = x - x.mean(0)
    y = y - y.mean(0)
    return np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


@pytest.mark.parametrize("shapes", [((40, 5), (40, 7)), ((12, 30), (12, 4, 5)), ((8, 3), (8, 50))])
def test_linear_cka_equals_a_direct_numpy_implementation(shapes):
    rng = np.random.default_rng(0)
    x = rng.normal(size=shapes[0])
    y = rng.normal(size=shapes[1])
    y.reshape(len(y), -1)[:, 0] += 2 * x.reshape(len(x), -1)[:, 0]  # related, not identical
    assert linear_cka(x, y) == pytest.approx(direct_cka(x, y), rel=1e-10)
    assert 0 <= linear_cka(x, y) <= 1


@pytest.mark.parametrize("features", [6, 60])  # fewer, and more, features than examples
def test_linear_cka_is_1_for_identical_and_invariant_to_rotation_scale_and_shift(features):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, features))
    q, _ = np.linalg.qr(rng.normal(size=(features, features)))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    y = rng.normal(size=(20, 9))
    base = linear_cka(x, y)
    assert linear_cka(x @ q, y) == pytest.approx(base, rel=1e-10)
    assert linear_cka(3.7 * x, y) == pytest.approx(base, rel=1e-10)
    assert linear_cka(x + 5.0, y) == pytest.approx(base, rel=1e-10)
    assert linear_cka(x @ q * 0.01 - 2, x) == pytest.approx(1.0, abs=1e-10)
    stretched = x * np.linspace(0.1, 10, features)  # not isotropic: CKA changes
    assert abs(linear_cka(stretched, x) - 1) > 1e-3
    assert np.isnan(linear_cka(np.ones((20, 3)), x))  # a constant representation


def test_cka_over_training_is_the_direct_cka_to_the_first_and_last_snapshot():
    recording, _ = recorded_probe("transformer")
    key = "probe/encoder.layers.0"
    values = recording[key].values
    for reference, ref in (("initial", values[0]), ("final", values[-1])):
        steps, cka = cka_over_training(recording, "encoder.layers.0", reference)
        assert steps.tolist() == list(range(STEPS + 1))
        np.testing.assert_allclose(cka, [direct_cka(v, ref) for v in values], rtol=1e-9)
    assert cka_over_training(recording, key)[1][0] == pytest.approx(1.0)
    assert cka_over_training(recording, key, "final")[1][-1] == pytest.approx(1.0)


# -- the representations scene ----------------------------------------------------------------


@pytest.fixture(scope="module")
def blobs_run(tmp_path_factory):
    """An MLP learning three 2-D blobs for 30 steps, a probe of its two hidden layers and
    its output at every step, saved to disk."""
    torch.manual_seed(0)
    centres = torch.tensor([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
    y = torch.arange(90) % 3
    x = centres[y] + 0.6 * torch.randn(90, 2)
    model = torch.nn.Sequential(
        torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16), torch.nn.Tanh(),
        torch.nn.Linear(16, 3),
    )  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    path = tmp_path_factory.mktemp("probe") / "blobs.rec"
    probe = Probe(x[:45], y[:45], modules=["1", "3", "4"])
    with Recorder(model, opt, path=path, quantities=[probe]) as rec:
        for _ in range(30):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            rec.log(loss=loss)
    return load(path)


def test_the_projection_moves_a_point_no_further_than_its_features_move(blobs_run):
    """Consecutive frames: each point's movement in the picture is at most its movement in
    feature space (a fixed projection onto orthonormal axes; no sign flip can happen), and
    the axes are the same whichever frame is drawn first."""
    scene = RepresentationsScene(blobs_run, None, DRAFT)
    assert scene.shown_ == ["probe/1", "probe/3", "probe/4"]
    for name in scene.shown_:
        proj, at, points = scene.projected(name)
        values = np.asarray(blobs_run[name].values, dtype=np.float64)
        assert at == len(values) - 1 and points.shape == (31, 45, 2)
        moved_2d = np.linalg.norm(np.diff(points, axis=0), axis=-1)
        moved = np.linalg.norm(np.diff(values.reshape(31, 45, -1), axis=0), axis=-1)
        assert np.all(moved_2d <= moved + 1e-9), name
        assert moved.max() > 0  # the representation did move
        # consecutive frames agree in orientation: no flip of either axis between them
        for a, b in zip(points[:-1], points[1:]):
            for axis in (0, 1):
                assert np.dot(a[:, axis] - a[:, axis].mean(), b[:, axis] - b[:, axis].mean()) > 0
        np.testing.assert_array_equal(Projection.fit(values[-1]).axes, proj.axes)
        assert 0.5 < proj.explained.sum() <= 1 + 1e-12


def crossing_series(frames: int = 41, n: int = 60, seed: int = 0) -> Series:
    """Points in 6-D whose two largest spreads cross halfway (2 -> 1 and 1 -> 2 along two
    directions that turn slowly), the other four small: a PCA of each frame swaps its two
    axes at the crossing, and flips signs as its largest entry changes."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 6))
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    values = []
    for t in np.linspace(0, 1, frames):
        spread = np.array([2 - t, 1 + t, 0.1, 0.1, 0.1, 0.1])
        turn = 0.6 * t  # the plane of the two large directions turns by 0.6 rad
        r = np.eye(6)
        r[:3, :3] = [[np.cos(turn), -np.sin(turn), 0], [np.sin(turn), np.cos(turn), 0], [0, 0, 1]]
        values.append((base * spread) @ r @ q + 0.3 * t)
    return Series(np.arange(frames, dtype=np.int64), np.array(values), kind="probe")


def test_procrustes_frames_do_not_flip_and_move_as_the_features_move():
    """Each frame on its own PCA axes, aligned to the frame before: between consecutive
    frames the points move at most 1.5x as far as the features (mean over points) and no
    axis flips; the same frames without the alignment jump (the test can fail); the
    alignment is deterministic, starts from the anchor on its own PCA axes, and keeps
    each frame's distances."""
    series = crossing_series()
    features = np.asarray(series.values, dtype=float)
    moved = np.linalg.norm(np.diff(features, axis=0), axis=-1).mean(axis=1)
    for anchor in (0, 20, 40):
        points = procrustes_points(series, anchor)
        assert points.shape == (41, 60, 2)
        np.testing.assert_array_equal(points, procrustes_points(series, anchor))
        np.testing.assert_allclose(
            points[anchor], Projection.fit(features[anchor])(features[anchor]), atol=1e-12
        )
        moved_2d = np.linalg.norm(np.diff(points, axis=0), axis=-1).mean(axis=1)
        assert np.all(moved_2d <= 1.5 * moved), (anchor, (moved_2d / moved).max())
        for a, b in zip(points[:-1], points[1:]):
            for axis in (0, 1):
                assert np.dot(a[:, axis] - a[:, axis].mean(), b[:, axis] - b[:, axis].mean()) > 0
        for t in (0, 20, 40):  # a rotation or reflection of the frame's own PCA coordinates
            own = Projection.fit(features[t])(features[t])
            np.testing.assert_allclose(
                np.linalg.norm(points[t][:, None] - points[t][None], axis=-1),
                np.linalg.norm(own[:, None] - own[None], axis=-1),
                atol=1e-9,
            )
    unaligned = np.stack([Projection.fit(v)(v) for v in features])
    jumps = np.linalg.norm(np.diff(unaligned, axis=0), axis=-1).mean(axis=1) / moved
    assert jumps.max() > 5  # a swap or a flip somewhere


def test_the_scene_draws_procrustes_frames_deterministically(tmp_path):
    series = crossing_series(frames=9)
    labels = Series(np.zeros(1, np.int64), (np.arange(60) % 3)[None], kind="data")
    rec = Recording({"probe/h": series, "probe/labels": labels})
    config = RepresentationsSceneConfig(projection="procrustes", cka="none")
    scene = RepresentationsScene(rec, config, DRAFT)
    _, at, points = scene.projected("probe/h")
    np.testing.assert_array_equal(points, procrustes_points(series, at))
    again = RepresentationsScene(rec, config, DRAFT)
    for i in (0, 4, 8):
        np.testing.assert_array_equal(scene.frame(i), again.frame(i))
    pca = RepresentationsScene(rec, RepresentationsSceneConfig(cka="none"), DRAFT)
    assert not np.array_equal(pca.frame(0), scene.frame(0))  # another view of the start
    with pytest.raises(ValueError, match="projection must be one of pca, procrustes"):
        RepresentationsSceneConfig(projection="tsne")


def test_the_scene_of_a_recorded_run_is_deterministic_and_fits_where_asked(blobs_run, tmp_path):
    scene = RepresentationsScene(blobs_run, None, DRAFT)
    frames = [scene.frame(i) for i in (0, 15, 30)]
    again = RepresentationsScene(blobs_run, None, DRAFT)
    for i, frame in zip((0, 15, 30), frames):
        np.testing.assert_array_equal(frame, again.frame(i))
        np.testing.assert_array_equal(frame, scene.frame(i, blit=False))
    assert not np.array_equal(frames[0], frames[-1])
    limits = [ax.get_xlim() for ax in scene._fig.axes[:3]]
    scene.frame(5)
    assert [ax.get_xlim() for ax in scene._fig.axes[:3]] == limits  # axes fixed over the run
    initial = RepresentationsScene(
        blobs_run, RepresentationsSceneConfig(show="probe/4", fit="12", cka="final"), DRAFT
    )
    assert initial.projected("probe/4")[1] == 12
    with pytest.raises(ValueError, match="fit must be final, initial or a step"):
        RepresentationsSceneConfig(fit="last")


def test_the_scene_without_probe_series_says_how_to_record_them():
    from scenes.weights import WeightsScene

    with pytest.raises(KeyError, match="no probe series \\(record them with dynamics.capture"):
        RepresentationsScene(WeightsScene.example(), None, DRAFT)


@pytest.mark.slow
def test_the_readme_probe_snippet_records_what_the_scene_draws(tmp_path, monkeypatch):

    from snippets import snippet

    code = snippet("probe")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "probe snippet", "exec"), {})
    recording = load(tmp_path / "outputs/probe.rec")
    assert recording["probe/3"].values.shape == (61, 200, 32)
    scene = RepresentationsScene(recording, None, DRAFT)
    assert scene.shown_ == ["probe/1", "probe/3", "probe/4"] and len(scene) == 61


@pytest.mark.parametrize("labels", ["none", "continuous", "many classes"])
def test_the_scene_colours_points_without_labels_by_a_scale_or_by_many_classes(labels):
    from dynamics.recording import Recording, Series

    example = RepresentationsScene.example()
    series = dict(example.items())
    n = series["probe/labels"].shape[0]
    if labels == "none":
        del series["probe/labels"]
    else:
        values = np.linspace(-1, 3, n) if labels == "continuous" else np.arange(n) % 15
        series["probe/labels"] = Series(np.zeros(1, np.int64), values[None], kind="data")
    scene = RepresentationsScene(Recording(series, example.metadata), None, DRAFT)
    frame = scene.frame(len(scene) - 1)
    assert frame.shape == (360, 640, 3)
    legends = [ax.get_legend() for ax in scene._fig.axes if ax.get_legend() is not None]
    texts = {t.get_text() for lg in legends for t in lg.get_texts()}
    assert ("14" in texts) == (labels == "many classes")
