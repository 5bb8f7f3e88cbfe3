"""Tests of the hflnet.pkl format, the MANO pose conversions and prediction_to_grasp (haco_grasp.data.hflnet).

References: the conversions against explicit float64 loops over the PCA basis; ``mirror_axis_angle`` against the
reflection ``M R M`` of scipy rotation matrices; left hands against the right-hand MANO output mirrored in x (the
route HFL-Net's evaluation takes); the end-to-end path against the DexYCB labels of the miniature dataset.
"""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from haco_grasp.data.dexycb import DexYCB
from haco_grasp.data.hflnet import (
    HFLNET_FORMAT,
    HFLNetFile,
    HFLNetPrediction,
    dexycb_pca_to_flat_axis_angle,
    flat_axis_angle_to_pca,
    load_hflnet,
    mirror_axis_angle,
    prediction_to_grasp,
    save_hflnet,
)
from haco_grasp.data.mini_dexycb import write_mini_dexycb, write_mini_hflnet
from haco_grasp.errors import InputError, UnsafePickleError
from haco_grasp.hand.assets import synthetic_mano_root
from haco_grasp.hand.conventions import ManoLayerCache, pose_hand
from haco_grasp.objects.procedural import make_object

MIRROR = np.diag([-1.0, 1.0, 1.0])


@pytest.fixture(scope="module")
def cache():
    return ManoLayerCache(synthetic_mano_root())


@pytest.fixture(scope="module")
def can():
    mesh = make_object("can")
    return lambda ycb_id: mesh


def _random_pose(rng, scale=0.4):
    return rng.normal(0.0, scale, size=48)


def _prediction(cache, rng, side="right", index=0, with_optional=False):
    """A self-consistent prediction of a random hand, stored the way HFL-Net's outputs are (see the module doc)."""
    own = _random_pose(rng)  # flat-mean axis-angle of the hand's own side
    betas = rng.normal(0.0, 0.5, size=10)
    root = np.array([0.05, -0.02, 0.6]) + rng.normal(0.0, 0.02, size=3)
    posed = pose_hand(
        cache.layer(side), {"global_orient": own[:3], "hand_pose": own[3:], "betas": betas, "transl": np.zeros(3)}
    )
    rotation = Rotation.from_rotvec(rng.normal(0.0, 1.0, size=3)).as_matrix()
    obj_pose = np.concatenate([rotation, (root + [0.0, 0.03, 0.02])[:, None]], axis=1)
    prediction = HFLNetPrediction(
        dex_index=index,
        sample_id=f"20200820-subject-03_20200820_135508_836212060125_{index:06d}",
        color_file=f"20200820-subject-03/20200820_135508/836212060125/color_{index:06d}.jpg",
        mano_side=side,
        ycb_id=4,
        hand_joints_rel=(posed.joints - posed.joints[0]).astype(np.float32),
        hand_verts_rel=(posed.verts - posed.joints[0]).astype(np.float32),
        hand_root=root.astype(np.float32),
        mano_pose_aa=(own if side == "right" else mirror_axis_angle(own)).astype(np.float32),
        mano_shape=betas.astype(np.float32),
        obj_pose=obj_pose.astype(np.float32),
        obj_pnp_ok=True,
    )
    if with_optional:
        prediction.image_path = "crops/000000.png"
        prediction.crop_box = np.array([100.0, 80.0, 356.0, 336.0], np.float32)
        prediction.hand_contact = rng.uniform(0.0, 1.0, size=778).astype(np.float32)
    return prediction, own, betas


# ------------------------------------------------------------------------------------------------ conversions
def test_pca_to_flat_against_loop(cache):
    model = cache.model("right")
    rng = np.random.default_rng(0)
    pca = rng.normal(size=(3, 45))
    expected = np.tile(model.hands_mean, (3, 1))
    for b in range(3):
        for k in range(45):
            expected[b] += pca[b, k] * model.hands_components[k]
    np.testing.assert_allclose(dexycb_pca_to_flat_axis_angle(pca, model), expected, atol=1e-12)
    # Fewer components use the leading rows.
    partial = dexycb_pca_to_flat_axis_angle(pca[:, :15], model)
    np.testing.assert_allclose(partial, model.hands_mean + pca[:, :15] @ model.hands_components[:15], atol=1e-12)
    # The DexYCB PCA-45 layer gives the same result as the model arrays.
    np.testing.assert_allclose(dexycb_pca_to_flat_axis_angle(pca, cache.dexycb_layer("right")), expected, atol=1e-12)


def test_flat_to_pca_inverse_and_projection(cache):
    model = cache.model("left")
    rng = np.random.default_rng(1)
    pca = rng.normal(size=(4, 45))
    aa = dexycb_pca_to_flat_axis_angle(pca, model)
    np.testing.assert_allclose(flat_axis_angle_to_pca(aa, model, 45), pca, atol=1e-10)
    # 15 components: the least-squares projection, whose residual is orthogonal to the kept components.
    pca15 = flat_axis_angle_to_pca(aa, model, 15)
    residual = aa - model.hands_mean - pca15 @ model.hands_components[:15]
    np.testing.assert_allclose(residual @ model.hands_components[:15].T, 0.0, atol=1e-10)
    lstsq = np.linalg.lstsq(model.hands_components[:15].T, (aa - model.hands_mean).T, rcond=None)[0].T
    np.testing.assert_allclose(pca15, lstsq, atol=1e-10)
    with pytest.raises(InputError, match="ncomps"):
        flat_axis_angle_to_pca(aa, model, 46)
    with pytest.raises(InputError, match="aa45"):
        flat_axis_angle_to_pca(aa[:, :44], model)
    with pytest.raises(InputError, match="flat_hand_mean=False"):
        dexycb_pca_to_flat_axis_angle(pca, cache.layer("left"))


def test_conversions_torch_match_numpy_and_gradcheck(cache):
    model = cache.model("right")
    rng = np.random.default_rng(2)
    pca = rng.normal(size=(2, 45))
    torch_out = dexycb_pca_to_flat_axis_angle(torch.as_tensor(pca), model)
    assert isinstance(torch_out, torch.Tensor)
    np.testing.assert_allclose(torch_out.numpy(), dexycb_pca_to_flat_axis_angle(pca, model), atol=1e-12)
    x = torch.tensor(rng.normal(size=(1, 45)), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: flat_axis_angle_to_pca(t, model, 10), (x,))
    assert torch.autograd.gradcheck(lambda t: dexycb_pca_to_flat_axis_angle(t, model), (x,))
    assert torch.autograd.gradcheck(mirror_axis_angle, (x,))


def test_mirror_axis_angle_is_reflection():
    rng = np.random.default_rng(3)
    aa = rng.normal(0.0, 1.0, size=(5, 48))
    mirrored = mirror_axis_angle(aa)
    np.testing.assert_array_equal(mirror_axis_angle(mirrored), aa)
    for row, row_m in zip(aa.reshape(-1, 3), mirrored.reshape(-1, 3), strict=True):
        expected = MIRROR @ Rotation.from_rotvec(row).as_matrix() @ MIRROR
        np.testing.assert_allclose(Rotation.from_rotvec(row_m).as_matrix(), expected, atol=1e-12)
    with pytest.raises(InputError, match="3J"):
        mirror_axis_angle(np.zeros(47))


def test_pca_layer_equals_flat_layer_with_converted_pose(cache):
    rng = np.random.default_rng(4)
    for side in ("right", "left"):
        pca = rng.normal(0.0, 1.0, size=(2, 45))
        orient, betas, transl = rng.normal(size=(2, 3)), rng.normal(size=(2, 10)), rng.normal(size=(2, 3))
        as_t = torch.as_tensor
        reference = cache.dexycb_layer(side)(as_t(orient), as_t(pca), as_t(betas), as_t(transl))
        finger = dexycb_pca_to_flat_axis_angle(pca, cache.model(side))
        flat = cache.layer(side)(as_t(orient), as_t(finger), as_t(betas), as_t(transl))
        torch.testing.assert_close(flat.verts, reference.verts, atol=1e-12, rtol=0)


# ------------------------------------------------------------------------------------------------ the file format
def test_round_trip(cache, tmp_path):
    rng = np.random.default_rng(5)
    samples = [_prediction(cache, rng, s, i, with_optional=(i == 1))[0] for i, s in enumerate(["right", "left"])]
    file = HFLNetFile(samples=samples, split="s0_test", subset="gsdf_test_s0_5k", checkpoint="sha256:abc")
    path = save_hflnet(file, tmp_path / "out" / "hflnet.pkl")
    loaded = load_hflnet(path)
    assert (loaded.format, loaded.split, loaded.subset, loaded.units, loaded.frame) == (
        HFLNET_FORMAT,
        "s0_test",
        "gsdf_test_s0_5k",
        "m",
        "camera",
    )
    assert (loaded.checkpoint, loaded.root_source, loaded.crop_source) == ("sha256:abc", "gt_joint0", "gt")
    assert len(loaded) == 2 and loaded.samples[0].crop_box is None and loaded.samples[1].image_path is not None
    for a, b in zip(samples, loaded.samples, strict=True):
        for name in ("dex_index", "sample_id", "color_file", "mano_side", "ycb_id", "obj_pnp_ok", "image_path"):
            assert getattr(a, name) == getattr(b, name)
        for name in ("hand_joints_rel", "hand_verts_rel", "hand_root", "mano_pose_aa", "mano_shape", "obj_pose"):
            assert getattr(b, name).dtype == np.float32
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(loaded.samples[1].hand_contact, samples[1].hand_contact)
    # The pickle holds only builtins and numpy arrays; no temporary files are left behind.
    raw = pickle.loads(path.read_bytes())

    def walk(value):
        if isinstance(value, dict):
            return all(isinstance(k, str) and walk(v) for k, v in value.items())
        if isinstance(value, list):
            return all(walk(v) for v in value)
        return value is None or isinstance(value, (str, int, float, bool, np.ndarray))

    assert walk(raw)
    assert sorted(p.name for p in path.parent.iterdir()) == ["hflnet.pkl"]
    assert loaded.by_index()[1].mano_side == "left"


def _valid_raw(cache):
    rng = np.random.default_rng(6)
    samples = [_prediction(cache, rng, "right", i)[0] for i in range(3)]
    return HFLNetFile(samples=samples).to_dict()


def _set(field, value):
    def corrupt(raw):
        raw["samples"][1][field] = value

    return corrupt


def _drop(field):
    def corrupt(raw):
        del raw["samples"][1][field]

    return corrupt


def _scale(field, factor):
    def corrupt(raw):
        raw["samples"][1][field] = raw["samples"][1][field] * factor

    return corrupt


def _shift_root(raw):
    raw["samples"][1]["hand_joints_rel"] = raw["samples"][1]["hand_joints_rel"] + np.float32(0.05)


def _nan_root(raw):
    raw["samples"][1]["hand_root"] = np.array([0.0, np.nan, 0.5], np.float32)


def _bad_rotation(raw):
    pose = raw["samples"][1]["obj_pose"].copy()
    pose[:, :3] *= 2.0
    raw["samples"][1]["obj_pose"] = pose


CORRUPTIONS = [
    (_set("hand_verts_rel", np.zeros((21, 3), np.float32)), r"hand_verts_rel: expected float \(778, 3\) metres, got"),
    (_scale("hand_verts_rel", 1000.0), r"hand_verts_rel: expected metres .*millimetres"),
    (_shift_root, r"hand_joints_rel: expected root-relative joints"),
    (_set("mano_pose_aa", np.zeros(45, np.float32)), r"mano_pose_aa: expected float \(48,\) radians, got \(45,\)"),
    (_drop("mano_shape"), r"mano_shape: expected a value, got a missing key"),
    (_set("mano_shape", [0.0] * 10), r"mano_shape: expected float \(10,\) betas, got list"),
    (_bad_rotation, r"obj_pose: expected a rotation"),
    (_set("mano_side", "both"), r"mano_side: expected 'right' or 'left', got 'both'"),
    (_set("ycb_id", 0), r"ycb_id: expected an int in 1\.\.21, got 0"),
    (_set("dex_index", "12"), r"dex_index: expected an int >= 0, got '12'"),
    (_nan_root, r"hand_root: expected finite float \(3,\) metres, got NaN"),
    (_set("obj_pnp_ok", "yes"), r"obj_pnp_ok: expected a bool, got str"),
    (_set("color_file", "/data/dexycb/x/color_000000.jpg"), r"color_file: expected a path relative"),
    (_set("hand_vert_rel", np.zeros((778, 3))), r"hand_vert_rel: expected no extra keys"),
    (_set("hand_contact", np.full(778, 2.0, np.float32)), r"hand_contact: expected values in \[0, 1\]"),
    (_set("crop_box", np.array([10.0, 10.0, 5.0, 20.0], np.float32)), r"crop_box: expected x1 > x0"),
    (_set("dex_index", 0), r"samples\[1\]\.dex_index: expected unique indices, got 0 again"),
]


@pytest.mark.parametrize(("corrupt", "message"), CORRUPTIONS, ids=[m.split(":")[0] for _, m in CORRUPTIONS])
def test_malformed_sample_field(cache, tmp_path, corrupt, message):
    raw = _valid_raw(cache)
    corrupt(raw)
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps(raw, protocol=4))
    with pytest.raises(InputError) as info:
        load_hflnet(path)
    text = str(info.value)
    assert "\n" not in text
    assert "samples[1]." in text
    assert re.search(message, text), text


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("format", "hflnet/v0", "header 'format' expected 'haco_grasp.hflnet/v1'"),
        ("units", "mm", "header 'units' expected 'm'"),
        ("frame", "world", "header 'frame' expected 'camera'"),
        ("root_source", "oracle", "header 'root_source' expected one of"),
        ("samples", {}, "'samples' expected a list"),
        ("extra", 1, "unknown header key 'extra'"),
    ],
)
def test_malformed_header(cache, tmp_path, key, value, message):
    raw = _valid_raw(cache)
    raw[key] = value
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps(raw, protocol=4))
    with pytest.raises(InputError, match=message):
        load_hflnet(path)


class _Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_non_allowed_class_is_refused(cache, tmp_path, capsys):
    raw = _valid_raw(cache)
    raw["samples"][0]["image_path"] = _Exploit()
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(raw, protocol=4))
    with pytest.raises(UnsafePickleError, match="builtins.print"):
        load_hflnet(path)
    assert "never run" not in capsys.readouterr().out


def test_save_refuses_invalid(cache, tmp_path):
    rng = np.random.default_rng(7)
    prediction = _prediction(cache, rng)[0]
    prediction.hand_root = np.zeros(4, np.float32)
    with pytest.raises(InputError, match=r"samples\[0\]\.hand_root"):
        save_hflnet(HFLNetFile(samples=[prediction]), tmp_path / "x.pkl")
    assert not (tmp_path / "x.pkl").exists()


# ------------------------------------------------------------------------------------------------ to Grasp
def test_right_hand_prediction_to_grasp(cache, can):
    rng = np.random.default_rng(8)
    prediction, own, betas = _prediction(cache, rng, "right")
    grasp = prediction_to_grasp(prediction, cache, can)
    np.testing.assert_allclose(grasp.hand_verts, prediction.hand_verts_rel + prediction.hand_root, atol=1e-7)
    np.testing.assert_allclose(grasp.hand_joints[0], prediction.hand_root, atol=1e-7)
    np.testing.assert_allclose(np.concatenate([grasp.global_orient, grasp.hand_pose]), own, atol=1e-6)
    # transl = hand_root - joint 0 of the hand posed at zero translation.
    at_zero = pose_hand(cache.layer("right"), {**grasp.mano_params, "transl": np.zeros(3)})
    np.testing.assert_allclose(grasp.transl, prediction.hand_root - at_zero.joints[0], atol=1e-12)
    from_mano = prediction_to_grasp(prediction, cache, can, hand_verts_from="mano")
    np.testing.assert_allclose(from_mano.hand_verts, grasp.hand_verts, atol=2e-6)
    assert grasp.meta["mano_fit_error_m"] < 2e-6
    np.testing.assert_allclose(grasp.obj_rotation, prediction.obj_pose[:, :3])
    np.testing.assert_allclose(grasp.obj_translation, prediction.obj_pose[:, 3])
    assert grasp.side == "right" and grasp.object_id == 4 and grasp.meta["contact_source"].startswith("geometry")


def test_left_hand_routes_agree(cache):
    """MANO_LEFT with the mirrored axis-angle == the right-hand output mirrored in x (synthetic hand)."""
    rng = np.random.default_rng(9)
    for _ in range(3):
        aa, betas = _random_pose(rng, 0.5), rng.normal(0.0, 0.7, size=10)
        right = pose_hand(
            cache.layer("right"), {"global_orient": aa[:3], "hand_pose": aa[3:], "betas": betas, "transl": np.zeros(3)}
        )
        left_aa = mirror_axis_angle(aa)
        left = pose_hand(
            cache.layer("left"),
            {"global_orient": left_aa[:3], "hand_pose": left_aa[3:], "betas": betas, "transl": np.zeros(3)},
        )
        np.testing.assert_allclose((right.verts - right.joints[0]) @ MIRROR, left.verts - left.joints[0], atol=1e-8)
        np.testing.assert_allclose((right.joints - right.joints[0]) @ MIRROR, left.joints - left.joints[0], atol=1e-8)


def test_left_hand_prediction_gives_ground_truth(cache, can):
    """An HFL-Net-style left sample (pose mirrored, vertices un-mirrored) becomes the ground-truth left hand."""
    rng = np.random.default_rng(10)
    own = _random_pose(rng)
    betas = rng.normal(0.0, 0.5, size=10)
    transl = np.array([-0.1, 0.05, 0.7])
    truth = pose_hand(
        cache.layer("left"), {"global_orient": own[:3], "hand_pose": own[3:], "betas": betas, "transl": transl}
    )
    # What HFL-Net outputs for the mirrored image: the right-hand pose and right-hand, root-relative geometry.
    network_aa = mirror_axis_angle(own)
    network = pose_hand(
        cache.layer("right"),
        {"global_orient": network_aa[:3], "hand_pose": network_aa[3:], "betas": betas, "transl": np.zeros(3)},
    )
    prediction = HFLNetPrediction(
        dex_index=3,
        sample_id="s",
        color_file="a/b/c/color_000000.jpg",
        mano_side="left",
        ycb_id=4,
        hand_joints_rel=((network.joints - network.joints[0]) @ MIRROR).astype(np.float32),  # step 5: negate x
        hand_verts_rel=((network.verts - network.joints[0]) @ MIRROR).astype(np.float32),
        hand_root=truth.joints[0].astype(np.float32),
        mano_pose_aa=network_aa.astype(np.float32),
        mano_shape=betas.astype(np.float32),
        obj_pose=np.eye(3, 4, dtype=np.float32),
    )
    grasp = prediction_to_grasp(prediction, cache, can)
    np.testing.assert_allclose(grasp.hand_verts, truth.verts, atol=1e-6)
    np.testing.assert_allclose(grasp.hand_joints, truth.joints, atol=1e-6)
    np.testing.assert_allclose(np.concatenate([grasp.global_orient, grasp.hand_pose]), own, atol=1e-6)
    np.testing.assert_allclose(grasp.transl, transl, atol=1e-6)
    assert grasp.side == "left" and grasp.meta["mano_fit_error_m"] < 2e-6
    np.testing.assert_array_equal(grasp.hand_faces, cache.layer("left").faces)


def test_stored_contact_is_used(cache, can):
    rng = np.random.default_rng(11)
    prediction = _prediction(cache, rng, with_optional=True)[0]
    grasp = prediction_to_grasp(prediction, cache, can)
    np.testing.assert_array_equal(grasp.hand_contact, prediction.hand_contact >= 0.5)
    assert grasp.meta["contact_source"] == "prediction"


# ------------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    return write_mini_dexycb(tmp_path_factory.mktemp("mini"), n_subjects=2, n_sequences=5, n_frames=6, seed=1)


def test_end_to_end_ground_truth(mini, tmp_path):
    dataset = DexYCB(mini.root, "s0_test", "all", mano_root=mini.mano_root, strict=False)
    written = write_mini_hflnet(mini, tmp_path / "hflnet.pkl", noise=None)
    loaded = load_hflnet(tmp_path / "hflnet.pkl")
    with_hand = [s.index for s in dataset if s.has_hand]
    assert [s.dex_index for s in loaded.samples] == with_hand == [s.dex_index for s in written.samples]
    assert loaded.root_source == "gt_joint0" and loaded.split == "s0_test"
    by_index = loaded.by_index()
    cache = dataset.layer_cache
    sides = set()
    for position in (0, len(dataset) - 1):  # first (right) and last (left) test samples
        sample = dataset[position]
        truth = sample.to_grasp(cache)
        prediction = by_index[sample.index]
        assert prediction.sample_id == sample.sample_id and prediction.color_file == sample.color_file
        assert dataset.index_of(prediction.color_file) == sample.index
        grasp = prediction_to_grasp(prediction, cache, mini.models_root)
        np.testing.assert_allclose(grasp.hand_verts, truth.hand_verts, atol=1e-5)
        np.testing.assert_allclose(grasp.hand_joints, sample.joint_3d[0], atol=1e-5)
        for name in ("global_orient", "hand_pose", "betas", "transl"):
            np.testing.assert_allclose(getattr(grasp, name), getattr(truth, name), atol=1e-5)
        np.testing.assert_allclose(grasp.obj_rotation, truth.obj_rotation, atol=1e-6)
        np.testing.assert_allclose(grasp.obj_translation, truth.obj_translation, atol=1e-6)
        assert grasp.object_name == truth.object_name and grasp.side == truth.side
        assert np.mean(grasp.hand_contact == truth.hand_contact) > 0.99
        sides.add(grasp.side)
    assert sides == {"right", "left"}


def test_end_to_end_noisy(mini, tmp_path):
    file = write_mini_hflnet(mini, tmp_path / "noisy.pkl", noise="hflnet-like", seed=2, subset="gsdf")
    dataset = DexYCB(mini.root, "s0_test", "gsdf", mano_root=mini.mano_root, strict=False)
    assert len(file) == len(dataset) == mini.n_test_gsdf
    errors = []
    for sample, prediction in zip(dataset, load_hflnet(tmp_path / "noisy.pkl").samples, strict=True):
        assert prediction.dex_index == sample.index
        np.testing.assert_allclose(prediction.hand_root, sample.joint_3d[0, 0])
        relative = sample.joint_3d[0] - sample.joint_3d[0, 0]
        errors.append(np.linalg.norm(prediction.hand_joints_rel - relative, axis=1).mean())
    assert 0.002 < np.mean(errors) < 0.04  # root-relative MPJPE of a few millimetres to a few centimetres
    with pytest.raises(InputError, match="noise"):
        write_mini_hflnet(mini, tmp_path / "x.pkl", noise="gaussian")
