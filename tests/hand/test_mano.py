"""MANO loading (restricted unpickler, chumpy evaluation) and the layer against smplx and a naive float64 FK."""

from __future__ import annotations

import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from haco_grasp.errors import AssetError, InputError, UnsafePickleError
from haco_grasp.hand import load_mano, read_mano_pickle
from haco_grasp.hand.joints import MANO_PARENTS, MANO_TIP_VERTEX_IDS, TO_21
from haco_grasp.safe_pickle import safe_load
from tests.helpers import assert_close

V = 778


def random_mano_arrays(seed: int = 0) -> dict:
    """A MANO-format model with random (but well-formed) arrays: enough to check the algebra."""
    rng = np.random.default_rng(seed)
    v_template = rng.normal(scale=0.05, size=(V, 3))
    weights = rng.random((V, 16)) ** 4
    weights /= weights.sum(1, keepdims=True)
    j_reg = np.zeros((16, V))
    for j in range(16):
        ids = rng.choice(V, 12, replace=False)
        j_reg[j, ids] = rng.random(12)
    j_reg /= j_reg.sum(1, keepdims=True)
    kintree = np.array([[4294967295] + list(MANO_PARENTS[1:]), list(range(16))], dtype=np.uint32)
    comps = np.linalg.qr(rng.normal(size=(45, 45)))[0].T
    return {
        "v_template": v_template,
        "f": rng.integers(0, V, size=(1538, 3)).astype(np.uint32),
        "J_regressor": sp.csc_matrix(j_reg),
        "kintree_table": kintree,
        "weights": weights,
        "shapedirs": rng.normal(scale=0.01, size=(V, 3, 10)),
        "posedirs": rng.normal(scale=0.001, size=(V, 3, 135)),
        "hands_components": comps,
        "hands_mean": rng.normal(scale=0.2, size=45),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


@pytest.fixture(scope="module")
def mano_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("mano")
    arrays = random_mano_arrays()
    for name in ("MANO_RIGHT.pkl", "MANO_LEFT.pkl"):
        with open(root / name, "wb") as f:
            pickle.dump(arrays, f, protocol=2)
    return root, arrays


# ----------------------------------------------------------------------------------------------- chumpy-style pickle
def _fake_chumpy_modules():
    """Install throwaway modules named like chumpy's so that pickle writes chumpy class paths."""
    ch_mod = types.ModuleType("chumpy.ch")
    re_mod = types.ModuleType("chumpy.reordering")
    ops_mod = types.ModuleType("chumpy.ch_ops")

    class Ch:
        def __init__(self, x):
            self.x = np.asarray(x, dtype=np.float64)
            self._dirty_vars = set()

    class Select:
        def __init__(self, a, idxs, preferred_shape):
            self.a, self.idxs, self.preferred_shape = a, idxs, preferred_shape

    class add:  # noqa: N801 - chumpy's own name
        def __init__(self, a, b):
            self.a, self.b = a, b

    for cls, mod in ((Ch, ch_mod), (Select, re_mod), (add, ops_mod)):
        cls.__module__ = mod.__name__
        cls.__qualname__ = cls.__name__
        setattr(mod, cls.__name__, cls)
    pkg = types.ModuleType("chumpy")
    return {"chumpy": pkg, "chumpy.ch": ch_mod, "chumpy.reordering": re_mod, "chumpy.ch_ops": ops_mod}


@pytest.mark.parametrize("protocol", [0, 2])
def test_chumpy_style_pickle_loads_without_chumpy(tmp_path, protocol):
    arrays = random_mano_arrays(1)
    modules = _fake_chumpy_modules()
    saved = {k: sys.modules.get(k) for k in modules}
    sys.modules.update(modules)
    try:
        Ch, Select = modules["chumpy.ch"].Ch, modules["chumpy.reordering"].Select
        chumpy_model = dict(arrays)
        for key in ("v_template", "weights", "posedirs", "hands_components", "hands_mean"):
            chumpy_model[key] = Ch(arrays[key])
        # MANO's shapedirs is a Select over a flat Ch: pick the elements in a shuffled order.
        flat = arrays["shapedirs"].ravel()
        perm = np.random.default_rng(2).permutation(flat.size)
        source = np.empty_like(flat)
        source[perm] = flat
        chumpy_model["shapedirs"] = Select(Ch(source), perm, arrays["shapedirs"].shape)
        path = tmp_path / "MANO_RIGHT.pkl"
        path.write_bytes(pickle.dumps(chumpy_model, protocol=protocol))
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    assert "chumpy" not in sys.modules or sys.modules["chumpy"] is saved["chumpy"]
    data = read_mano_pickle(path)
    np.testing.assert_array_equal(data.shapedirs, arrays["shapedirs"])
    np.testing.assert_array_equal(data.v_template, arrays["v_template"])
    np.testing.assert_array_equal(data.J_regressor, arrays["J_regressor"].toarray())
    assert data.parents.tolist() == list(MANO_PARENTS)


def test_unknown_chumpy_class_is_named(tmp_path):
    modules = _fake_chumpy_modules()
    saved = {k: sys.modules.get(k) for k in modules}
    sys.modules.update(modules)
    try:
        Ch, add = modules["chumpy.ch"].Ch, modules["chumpy.ch_ops"].add
        blob = pickle.dumps({"v_template": add(Ch([1.0]), Ch([2.0]))}, protocol=2)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    with pytest.raises(UnsafePickleError, match=r"chumpy\.ch_ops\.add"):
        safe_load(blob, chumpy=True)


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/haco_grasp_pickle_exploit_ran",))


def test_pickle_that_runs_code_is_refused(tmp_path):
    import os

    marker = "/tmp/haco_grasp_pickle_exploit_ran"
    if os.path.exists(marker):
        os.remove(marker)
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps({"v_template": _Exploit()}))
    with pytest.raises(UnsafePickleError, match="system"):
        read_mano_pickle(path)
    assert not os.path.exists(marker)


def test_chumpy_refused_where_not_expected():
    modules = _fake_chumpy_modules()
    saved = {k: sys.modules.get(k) for k in modules}
    sys.modules.update(modules)
    try:
        blob = pickle.dumps(modules["chumpy.ch"].Ch([1.0]), protocol=2)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    with pytest.raises(UnsafePickleError):
        safe_load(blob)


def test_missing_model_error_names_files(tmp_path, monkeypatch):
    monkeypatch.delenv("HACO_GRASP_MANO_ROOT", raising=False)
    with pytest.raises(AssetError, match="MANO_RIGHT.pkl.*MANO website"):
        load_mano(root=tmp_path)
    with pytest.raises(FileNotFoundError, match="HACO_GRASP_MANO_ROOT"):
        load_mano()


def test_env_root_and_models_subfolder(mano_dir, tmp_path, monkeypatch):
    root, _ = mano_dir
    sub = tmp_path / "models"
    sub.mkdir()
    (sub / "MANO_LEFT.pkl").write_bytes((root / "MANO_LEFT.pkl").read_bytes())
    monkeypatch.setenv("HACO_GRASP_MANO_ROOT", str(tmp_path))
    layer = load_mano(side="left")
    assert layer.side == "left" and layer.model_path.endswith("models/MANO_LEFT.pkl")


def test_malformed_model_is_input_error(tmp_path):
    arrays = random_mano_arrays()
    arrays["weights"] = arrays["weights"][:, :15]
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps(arrays))
    with pytest.raises(InputError, match="weights"):
        read_mano_pickle(path)
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(InputError, match="not a readable pickle"):
        read_mano_pickle(path)


# ------------------------------------------------------------------------------------------------ forward kinematics
def _rodrigues(aa: np.ndarray) -> np.ndarray:
    theta = np.linalg.norm(aa)
    if theta < 1e-12:
        return np.eye(3)
    k = aa / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx


def naive_mano(arrays: dict, full_pose: np.ndarray, betas: np.ndarray, transl: np.ndarray):
    """Textbook MANO/SMPL forward pass, one sample, float64, loops."""
    shapedirs = arrays["shapedirs"][:, :, : len(betas)]
    v_shaped = arrays["v_template"] + np.einsum("vcs,s->vc", shapedirs, betas)
    j_reg = arrays["J_regressor"].toarray()
    joints = j_reg @ v_shaped
    rots = [_rodrigues(full_pose[3 * j : 3 * j + 3]) for j in range(16)]
    pose_feature = np.concatenate([(rots[j] - np.eye(3)).ravel() for j in range(1, 16)])
    v_posed = v_shaped + np.einsum("vcp,p->vc", arrays["posedirs"], pose_feature)
    world = [None] * 16
    for j in range(16):
        local = np.eye(4)
        local[:3, :3] = rots[j]
        parent = MANO_PARENTS[j]
        local[:3, 3] = joints[j] - (joints[parent] if parent >= 0 else 0)
        world[j] = local if parent < 0 else world[parent] @ local
    posed_joints = np.stack([w[:3, 3] for w in world])
    verts = np.zeros_like(v_posed)
    for v in range(V):
        acc = np.zeros((4, 4))
        for j in range(16):
            rel = world[j].copy()
            rel[:3, 3] -= world[j][:3, :3] @ joints[j]
            acc += arrays["weights"][v, j] * rel
        verts[v] = acc[:3, :3] @ v_posed[v] + acc[:3, 3]
    tips = verts[list(MANO_TIP_VERTEX_IDS)]
    joints21 = np.concatenate([posed_joints, tips])[list(TO_21)]
    return verts + transl, joints21 + transl


@pytest.mark.parametrize(
    "use_pca,ncomps,flat", [(True, 15, False), (True, 45, False), (False, 45, True), (True, 6, True)]
)
def test_layer_matches_naive_fk(mano_dir, use_pca, ncomps, flat):
    root, arrays = mano_dir
    layer = load_mano(root=root, use_pca=use_pca, num_pca_comps=ncomps, flat_hand_mean=flat, dtype=torch.float64)
    rng = np.random.default_rng(3)
    batch = 2
    go = rng.normal(scale=0.5, size=(batch, 3))
    hp = rng.normal(scale=0.7, size=(batch, ncomps if use_pca else 45))
    betas = rng.normal(size=(batch, 10))
    transl = rng.normal(scale=0.1, size=(batch, 3))
    out = layer(*(torch.from_numpy(a) for a in (go, hp, betas, transl)))
    assert out.verts.shape == (batch, V, 3) and out.joints.shape == (batch, 21, 3)
    for b in range(batch):
        finger = (hp[b] @ arrays["hands_components"][:ncomps] if use_pca else hp[b]) + (
            0 if flat else arrays["hands_mean"]
        )
        full_pose = np.concatenate([go[b], finger])
        verts, joints = naive_mano(arrays, full_pose, betas[b], transl[b])
        assert_close(out.verts[b], verts, atol=1e-8, rtol=1e-7)  # smplx adds 1e-8 to angles
        assert_close(out.joints[b], joints, atol=1e-8, rtol=1e-7)


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("use_pca,ncomps,flat", [(True, 12, False), (False, 45, False), (False, 45, True)])
def test_layer_matches_smplx_mano(mano_dir, side, use_pca, ncomps, flat):
    import smplx
    from smplx.utils import Struct

    root, arrays = mano_dir
    ours = load_mano(side=side, root=root, use_pca=use_pca, num_pca_comps=ncomps, flat_hand_mean=flat)
    theirs = smplx.MANO(
        str(root), is_rhand=side == "right", data_struct=Struct(**arrays), use_pca=use_pca,
        num_pca_comps=ncomps, flat_hand_mean=flat, batch_size=3,
    )  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    go = torch.randn(3, 3, generator=gen) * 0.4
    hp = torch.randn(3, ncomps if use_pca else 45, generator=gen) * 0.5
    betas = torch.randn(3, 10, generator=gen)
    transl = torch.randn(3, 3, generator=gen) * 0.1
    a = ours(global_orient=go, hand_pose=hp, betas=betas, transl=transl)
    b = theirs(global_orient=go, hand_pose=hp, betas=betas, transl=transl)
    torch.testing.assert_close(a.verts, b.vertices, atol=1e-5, rtol=0)
    mano16_in_21 = [TO_21.index(j) for j in range(16)]
    torch.testing.assert_close(a.joints[:, mano16_in_21], b.joints, atol=1e-5, rtol=0)


def test_layer_gradients_and_validation(mano_dir):
    root, _ = mano_dir
    layer = load_mano(root=root, dtype=torch.float64)
    go = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    hp = torch.zeros(1, 15, dtype=torch.float64, requires_grad=True)
    tr = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda g, h, t: layer(g, h, None, t).joints, (go, hp, tr), eps=1e-6, atol=1e-6)
    with pytest.raises(InputError, match="hand_pose.*\\(1, 15\\)"):
        layer(global_orient=torch.zeros(1, 3), hand_pose=torch.zeros(1, 45))
    with pytest.raises(InputError, match="num_pca_comps"):
        load_mano(root=root, num_pca_comps=0)
    out = layer()  # all defaults: batch of one rest hand with the mean pose
    assert out.verts.shape == (1, V, 3) and torch.isfinite(out.verts).all()
