"""Tests of ContactOpt's capsule contact model against hand-computed values and a float64 naive loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from haco_grasp.errors import InputError
from haco_grasp.geometry.contact import (
    CAPSULE_BOTTOM,
    CAPSULE_RADIUS,
    CAPSULE_TOP,
    GT_CAPSULE_BOTTOM,
    PENETRATION_ALLOWANCE,
    ContactMaps,
    asymmetric_l1,
    capsule_contact,
    contact_maps,
    contact_value_to_distance,
    distance_to_contact_value,
    penetration_hinge,
    sdf_to_contact,
    sharpen_contact,
)

F64 = torch.float64


# ----------------------------------------------------------------------------------------------------------------
# naive float64 reference (plain Python scalars)


def naive_falloff(dist: float, radius: float, method: int, normal_dot: float = 0.0) -> float:
    s = dist / radius
    if method == 0:
        c = 1.0 / (s + 1e-4)
    elif method == 1:
        c = 2.0 - s
    elif method == 2:
        c = (1.0 / (s + 1e-4)) ** 2
    elif method == 3:
        c = 1.0 / (1.0 + math.exp(-(2.5 - s)))
    else:
        c = (1.0 - normal_dot) / 2.0 / (s + 1e-4)
    return min(1.0, max(0.0, c))


def naive_capsule_distance(h, o, n, top, bottom) -> float:
    a = [o[i] + top * n[i] for i in range(3)]
    b = [o[i] + bottom * n[i] for i in range(3)]
    ab = [b[i] - a[i] for i in range(3)]
    ah = [h[i] - a[i] for i in range(3)]
    len_sq = sum(v * v for v in ab)
    t = 0.0 if len_sq == 0 else sum(ah[i] * ab[i] for i in range(3)) / len_sq
    t = min(1.0, max(0.0, t))
    return math.sqrt(sum((ah[i] - t * ab[i]) ** 2 for i in range(3)))


def naive_nearest(point, cloud) -> int:
    best, best_sq = -1, math.inf
    for j, q in enumerate(cloud):
        sq = sum((point[i] - q[i]) ** 2 for i in range(3))
        if sq < best_sq:
            best, best_sq = j, sq
    return best


def naive_contact_maps(hand, obj, normals, top, bottom, radius, method, hand_normals=None):
    """Lists of per-batch hand/obj contact and nn indices, computed point by point."""
    out_hand, out_obj, out_hidx, out_oidx = [], [], [], []
    for b in range(len(hand)):
        hb, ob, nb = hand[b].tolist(), obj[b].tolist(), normals[b].tolist()
        hnb = hand_normals[b].tolist() if hand_normals is not None else None
        row_h, row_hi = [], []
        for i, h in enumerate(hb):
            j = naive_nearest(h, ob)
            d = naive_capsule_distance(h, ob[j], nb[j], top, bottom)
            dot = sum(hnb[i][k] * nb[j][k] for k in range(3)) if hnb else 0.0
            row_h.append(naive_falloff(d, radius, method, dot))
            row_hi.append(j)
        row_o, row_oi = [], []
        for j, o in enumerate(ob):
            i = naive_nearest(o, hb)
            d = naive_capsule_distance(hb[i], o, nb[j], top, bottom)
            dot = sum(hnb[i][k] * nb[j][k] for k in range(3)) if hnb else 0.0
            row_o.append(naive_falloff(d, radius, method, dot))
            row_oi.append(i)
        out_hand.append(row_h)
        out_obj.append(row_o)
        out_hidx.append(row_hi)
        out_oidx.append(row_oi)
    return out_hand, out_obj, out_hidx, out_oidx


def naive_penetration(hand, obj, normals, allowance):
    out = []
    for b in range(len(hand)):
        hb, ob, nb = hand[b].tolist(), obj[b].tolist(), normals[b].tolist()
        total = 0.0
        for h in hb:
            j = naive_nearest(h, ob)
            depth = -sum((h[k] - ob[j][k]) * nb[j][k] for k in range(3))
            total += max(0.0, depth - allowance)
        out.append(total / len(hb))
    return out


def random_scene(seed: int, batch: int = 2, num_hand: int = 25, num_obj: int = 30, dtype=F64):
    gen = torch.Generator().manual_seed(seed)
    obj = torch.rand(batch, num_obj, 3, generator=gen, dtype=dtype) * 0.02
    normals = torch.nn.functional.normalize(torch.randn(batch, num_obj, 3, generator=gen, dtype=dtype), dim=-1)
    # Hand points spread around the object so that contact values cover (0, 1].
    hand = obj[:, torch.randint(0, num_obj, (num_hand,), generator=gen)] + 0.004 * torch.randn(
        batch, num_hand, 3, generator=gen, dtype=dtype
    )
    hand_normals = torch.nn.functional.normalize(torch.randn(batch, num_hand, 3, generator=gen, dtype=dtype), dim=-1)
    return hand, obj, normals, hand_normals


def single_capsule(points: list[list[float]]):
    """One object point at the origin with normal +z, queried by each of ``points``."""
    centres = torch.zeros(1, 1, 3, dtype=F64)
    normals = torch.tensor([[[0.0, 0.0, 1.0]]], dtype=F64)
    query = torch.tensor([points], dtype=F64)
    idx = torch.zeros(1, len(points), dtype=torch.long)
    return query, centres, normals, idx


# ----------------------------------------------------------------------------------------------------------------
# hand-computed values


def test_constants_match_contactopt():
    assert (CAPSULE_TOP, CAPSULE_BOTTOM, CAPSULE_RADIUS) == (0.0005, -0.001, 0.001)
    assert GT_CAPSULE_BOTTOM == -0.0015
    assert PENETRATION_ALLOWANCE == 0.002


def test_capsule_contact_hand_computed():
    points = [
        [0.0, 0.0, -0.0005],  # on the axis, inside the surface -> d = 0 -> 1
        [0.0, 0.0, 0.0025],  # 2 mm beyond the capsule top (0.5 mm) along the normal -> d = 2 mm
        [0.005, 0.0, 0.0],  # 5 mm lateral at the surface: closest axis point is o itself -> d = 5 mm
        [0.0, 0.003, -0.005],  # below the bottom (-1 mm): closest is b -> d = sqrt(3² + 4²) = 5 mm
        [0.0008, 0.0, 0.0],  # within the radius -> clamped to 1
    ]
    contact = capsule_contact(*single_capsule(points))
    expected = [1.0, 1.0 / (2.0 + 1e-4), 1.0 / (5.0 + 1e-4), 1.0 / (5.0 + 1e-4), 1.0]
    assert contact.shape == (1, 5)
    torch.testing.assert_close(contact[0], torch.tensor(expected, dtype=F64), rtol=1e-12, atol=1e-12)


def test_gt_capsule_bottom_extends_axis():
    query, centres, normals, idx = single_capsule([[0.0, 0.0, -0.0035]])
    optimiser = capsule_contact(query, centres, normals, idx)  # bottom -1 mm -> d = 2.5 mm
    ground_truth = capsule_contact(query, centres, normals, idx, bottom=GT_CAPSULE_BOTTOM)  # -1.5 mm -> d = 2 mm
    assert optimiser.item() == pytest.approx(1.0 / (2.5 + 1e-4), rel=1e-12)
    assert ground_truth.item() == pytest.approx(1.0 / (2.0 + 1e-4), rel=1e-12)


def test_capsule_contact_is_rigid_invariant():
    """Rotating and translating the whole configuration leaves every contact value unchanged."""
    _, obj, normals, _ = random_scene(3)
    gen = torch.Generator().manual_seed(1)
    idx = torch.randint(0, obj.shape[1], (2, 40), generator=gen)
    hand = torch.stack([obj[b, idx[b]] for b in range(2)]) + 0.002 * torch.randn(2, 40, 3, generator=gen, dtype=F64)
    angle = 0.7
    rot = torch.tensor(
        [[math.cos(angle), -math.sin(angle), 0.0], [math.sin(angle), math.cos(angle), 0.0], [0.0, 0.0, 1.0]], dtype=F64
    )
    shift = torch.tensor([0.1, -0.2, 0.3], dtype=F64)
    before = capsule_contact(hand, obj, normals, idx)
    after = capsule_contact(hand @ rot.T + shift, obj @ rot.T + shift, normals @ rot.T, idx)
    torch.testing.assert_close(after, before, rtol=1e-9, atol=1e-12)
    assert before.min() < 0.5 and before.max() == 1.0  # the scene exercises both regimes


@pytest.mark.parametrize("method", [0, 1, 2, 3, 4])
def test_sdf_to_contact_methods(method):
    dist = torch.tensor([0.0, 0.0005, 0.001, 0.0015, 0.002, 0.005, 0.01, 0.03], dtype=F64)
    dot = torch.linspace(-1.0, 1.0, dist.numel(), dtype=F64)
    contact = sdf_to_contact(dist, 0.001, method, normal_dot=dot if method == 4 else None)
    expected = [naive_falloff(d, 0.001, method, nd) for d, nd in zip(dist.tolist(), dot.tolist(), strict=True)]
    torch.testing.assert_close(contact, torch.tensor(expected, dtype=F64), rtol=1e-12, atol=1e-12)
    assert contact.min() >= 0.0 and contact.max() <= 1.0


def test_sdf_to_contact_known_values():
    dist = torch.tensor([0.002, 0.005, 0.01, 0.02], dtype=F64)
    torch.testing.assert_close(sdf_to_contact(dist), torch.tensor([0.5, 0.2, 0.1, 0.05], dtype=F64), rtol=1e-3, atol=0)
    assert sdf_to_contact(torch.tensor([0.0015], dtype=F64), method=1).item() == pytest.approx(0.5)
    assert sdf_to_contact(torch.tensor([0.0025], dtype=F64), method=3).item() == pytest.approx(0.5)


def test_sdf_to_contact_rejects_bad_method_and_missing_dot():
    dist = torch.zeros(3)
    with pytest.raises(InputError, match="method"):
        sdf_to_contact(dist, method=5)
    with pytest.raises(InputError, match="normal_dot"):
        sdf_to_contact(dist, method=4)
    with pytest.raises(InputError, match="radius"):
        sdf_to_contact(dist, radius=0.0)


# ----------------------------------------------------------------------------------------------------------------
# against the naive loop


@pytest.mark.parametrize(
    ("method", "bottom", "seed"),
    [(0, CAPSULE_BOTTOM, 0), (0, GT_CAPSULE_BOTTOM, 1), (2, CAPSULE_BOTTOM, 2), (3, CAPSULE_BOTTOM, 3), (4, -0.001, 4)],
)
def test_contact_maps_match_naive_loop(method, bottom, seed):
    hand, obj, normals, hand_normals = random_scene(seed)
    maps = contact_maps(hand, obj, normals, bottom=bottom, method=method, hand_normals=hand_normals)
    assert isinstance(maps, ContactMaps)
    ref_hand, ref_obj, ref_hidx, ref_oidx = naive_contact_maps(
        hand, obj, normals, CAPSULE_TOP, bottom, CAPSULE_RADIUS, method, hand_normals if method == 4 else None
    )
    assert maps.hand_nn_idx.tolist() == ref_hidx
    assert maps.obj_nn_idx.tolist() == ref_oidx
    torch.testing.assert_close(maps.hand, torch.tensor(ref_hand, dtype=F64), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(maps.obj, torch.tensor(ref_obj, dtype=F64), rtol=1e-10, atol=1e-12)
    assert 0.0 < maps.hand.min() < 0.9  # not all saturated: the comparison is informative


def test_capsule_contact_matches_naive_loop_with_unnormalised_normals():
    hand, obj, normals, _ = random_scene(7, batch=1)
    normals = normals * torch.rand(normals.shape[:2], dtype=F64, generator=torch.Generator().manual_seed(2))[..., None]
    idx = torch.randint(0, obj.shape[1], hand.shape[:2], generator=torch.Generator().manual_seed(3))
    contact = capsule_contact(hand, obj, normals, idx, top=0.002, bottom=-0.003, radius=0.0015)
    expected = [
        naive_falloff(naive_capsule_distance(h, obj[0, j].tolist(), normals[0, j].tolist(), 0.002, -0.003), 0.0015, 0)
        for h, j in zip(hand[0].tolist(), idx[0].tolist(), strict=True)
    ]
    torch.testing.assert_close(contact[0], torch.tensor(expected, dtype=F64), rtol=1e-10, atol=1e-12)


def test_contact_maps_float32_close_to_float64():
    hand, obj, normals, _ = random_scene(11)
    maps64 = contact_maps(hand, obj, normals)
    maps32 = contact_maps(hand.float(), obj.float(), normals.float())
    assert maps32.hand.dtype == torch.float32
    torch.testing.assert_close(maps32.hand.double(), maps64.hand, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(maps32.obj.double(), maps64.obj, rtol=1e-4, atol=1e-5)


def test_penetration_hinge_plane():
    # Object: a 5 x 5 grid on the plane z = 0, normals +z.
    grid = torch.stack(torch.meshgrid(torch.linspace(-0.01, 0.01, 5), torch.linspace(-0.01, 0.01, 5), indexing="ij"))
    obj = torch.cat([grid.reshape(2, -1).T, torch.zeros(25, 1)], dim=1)[None].double()
    normals = torch.zeros_like(obj)
    normals[..., 2] = 1.0
    hand = torch.tensor([[[0.0, 0.0, -0.003], [0.004, 0.0, 0.01], [0.0, 0.005, -0.0015]]], dtype=F64)
    loss = penetration_hinge(hand, obj, normals, allowance=0.002)
    assert loss.shape == (1,)
    assert loss.item() == pytest.approx(0.001 / 3, rel=1e-12)  # only the 3 mm vertex exceeds the 2 mm allowance
    no_allowance = penetration_hinge(hand, obj, normals, allowance=0.0)
    assert no_allowance.item() == pytest.approx((0.003 + 0.0015) / 3, rel=1e-12)


def test_penetration_hinge_matches_naive_loop_and_accepts_nn_idx():
    hand, obj, normals, _ = random_scene(5)
    loss = penetration_hinge(hand, obj, normals, allowance=0.001)
    expected = naive_penetration(hand, obj, normals, 0.001)
    torch.testing.assert_close(loss, torch.tensor(expected, dtype=F64), rtol=1e-10, atol=1e-14)
    assert loss.min() > 0
    maps = contact_maps(hand, obj, normals)
    torch.testing.assert_close(penetration_hinge(hand, obj, normals, 0.001, nn_idx=maps.hand_nn_idx), loss)


def test_asymmetric_l1_hand_computed():
    target = torch.tensor([[1.0, 0.0], [0.2, 0.2]], dtype=F64)
    current = torch.tensor([[0.5, 0.5], [0.2, 0.0]], dtype=F64)
    # w(0.5) = 0.5 + 2 * 0.5 = 1.5; w(-0.5) = -0.5; w(0) = 0; w(0.2) = 0.6.
    torch.testing.assert_close(asymmetric_l1(target, current), torch.tensor([1.0, 0.3], dtype=F64))
    torch.testing.assert_close(asymmetric_l1(target, current, asym=4.0), torch.tensor([1.5, 0.5], dtype=F64))


def test_sharpen_contact():
    target = torch.tensor([0.0, 0.1, 0.3, 0.5, 0.6, 0.9], dtype=F64)
    # clamp(2 (T - 0.3) + 0.3, 0, 1)
    expected = torch.tensor([0.0, 0.0, 0.3, 0.7, 0.9, 1.0], dtype=F64)
    torch.testing.assert_close(sharpen_contact(target, 0.3), expected)
    torch.testing.assert_close(sharpen_contact(target, 0.3, slope=1.0), target)
    with pytest.raises(InputError):
        sharpen_contact(target, 1.5)


# ----------------------------------------------------------------------------------------------------------------
# distance <-> value mapping


def test_distance_value_mapping_known_pairs():
    assert distance_to_contact_value(0.01) == pytest.approx(0.1, abs=1e-5)
    assert distance_to_contact_value(0.02) == pytest.approx(0.05, abs=1e-5)
    assert distance_to_contact_value(0.005) == pytest.approx(0.2, abs=1e-5)
    assert distance_to_contact_value(0.0) == 1.0
    assert contact_value_to_distance(0.1) == pytest.approx(0.01, rel=1e-4)
    assert contact_value_to_distance(0.05) == pytest.approx(0.02, rel=1e-4)
    assert contact_value_to_distance(0.0) == math.inf
    assert isinstance(distance_to_contact_value(0.01), float)


def test_distance_value_mapping_round_trip_and_types():
    values = np.linspace(0.01, 1.0, 50)
    dist = contact_value_to_distance(values)
    assert isinstance(dist, np.ndarray) and dist.shape == values.shape
    np.testing.assert_allclose(distance_to_contact_value(dist), values, rtol=1e-12)
    tensor = torch.tensor(values, dtype=F64)
    torch.testing.assert_close(distance_to_contact_value(contact_value_to_distance(tensor)), tensor)
    with pytest.raises(InputError):
        contact_value_to_distance(np.array([0.5, 1.5]))
    with pytest.raises(InputError):
        distance_to_contact_value(-0.01)


def test_distance_to_contact_value_agrees_with_capsule_contact():
    """A point d metres from the axis (lateral, at the surface) gets exactly distance_to_contact_value(d)."""
    lateral = [0.0005, 0.002, 0.004, 0.01, 0.025]
    contact = capsule_contact(*single_capsule([[d, 0.0, 0.0] for d in lateral]))
    expected = distance_to_contact_value(torch.tensor(lateral, dtype=F64))
    torch.testing.assert_close(contact[0], expected, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------------------------------------------
# gradients and degenerate inputs


def test_gradcheck_capsule_contact():
    hand, obj, normals, _ = random_scene(21, batch=1, num_hand=6, num_obj=4)
    hand = obj[:, [0, 1, 2, 3, 0, 1]] + torch.tensor(
        [
            [0.003, 0.001, 0.0],
            [0.0, 0.004, 0.002],
            [0.002, -0.003, 0.001],
            [-0.004, 0.0, 0.003],
            [0.0, 0.0, 0.005],
            [0.001, 0.006, -0.002],
        ],
        dtype=F64,
    )
    idx = torch.tensor([[0, 1, 2, 3, 0, 1]])
    inputs = (hand.clone().requires_grad_(), obj.clone().requires_grad_(), normals.clone().requires_grad_())
    assert torch.autograd.gradcheck(lambda h, o, n: capsule_contact(h, o, n, idx), inputs, eps=1e-8, atol=1e-6)


def test_gradcheck_contact_maps_and_losses():
    hand, obj, normals, _ = random_scene(22, batch=1, num_hand=5, num_obj=6)
    inputs = (hand.clone().requires_grad_(), obj.clone().requires_grad_(), normals.clone().requires_grad_())

    def maps(h, o, n):
        result = contact_maps(h, o, n)
        return result.hand, result.obj

    assert torch.autograd.gradcheck(maps, inputs, eps=1e-8, atol=1e-6)
    assert torch.autograd.gradcheck(lambda h, o, n: penetration_hinge(h, o, n, 0.0005), inputs, eps=1e-8, atol=1e-6)
    target = torch.tensor([[0.9, 0.1, 0.5, 0.3, 0.7]], dtype=F64)
    current = torch.tensor([[0.2, 0.4, 0.45, 0.8, 0.1]], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda c: asymmetric_l1(target, c), (current,))


def test_no_nan_for_coincident_points_and_zero_normals():
    centres = torch.zeros(1, 3, 3, dtype=F64)
    normals = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]], dtype=F64)
    # query 0 sits exactly at the capsule start a; query 1 coincides with its (zero-normal) centre;
    # query 2 is 3 mm from a zero-normal centre (degenerate capsule = a sphere of radius r).
    query = torch.tensor([[[0.0, 0.0, CAPSULE_TOP], [0.0, 0.0, 0.0], [0.003, 0.0, 0.0]]], dtype=F64)
    idx = torch.tensor([[0, 1, 2]])
    query.requires_grad_()
    normals.requires_grad_()
    contact = capsule_contact(query, centres, normals, idx)
    torch.testing.assert_close(contact.detach(), torch.tensor([[1.0, 1.0, 1.0 / (3.0 + 1e-4)]], dtype=F64))
    contact.sum().backward()
    assert torch.isfinite(query.grad).all() and torch.isfinite(normals.grad).all()

    hand = torch.zeros(1, 4, 3, dtype=F64, requires_grad=True)  # all hand vertices coincide with the object points
    obj = torch.zeros(1, 2, 3, dtype=F64)
    maps = contact_maps(hand, obj, torch.zeros(1, 2, 3, dtype=F64))
    (maps.hand.sum() + maps.obj.sum() + penetration_hinge(hand, obj, torch.zeros_like(obj)).sum()).backward()
    assert torch.isfinite(hand.grad).all()
    assert torch.equal(maps.hand, torch.ones(1, 4, dtype=F64))


def test_batch_of_one_and_shapes():
    hand, obj, normals, _ = random_scene(31, batch=1, num_hand=778, num_obj=64, dtype=torch.float32)
    maps = contact_maps(hand, obj, normals)
    assert maps.hand.shape == (1, 778) and maps.obj.shape == (1, 64)
    assert maps.hand_nn_idx.shape == (1, 778) and maps.hand_nn_idx.dtype == torch.long
    assert maps.obj_nn_idx.shape == (1, 64) and int(maps.obj_nn_idx.max()) < 778
    assert penetration_hinge(hand, obj, normals).shape == (1,)


def test_input_validation():
    hand, obj, normals, _ = random_scene(41)
    with pytest.raises(InputError, match="batch"):
        contact_maps(hand, obj[:1], normals[:1])
    with pytest.raises(InputError, match=r"\(B, N, 3\)"):
        contact_maps(hand[0], obj, normals)
    with pytest.raises(InputError, match="obj_normals"):
        contact_maps(hand, obj, normals[:, :-1])
    with pytest.raises(InputError, match="at least one"):
        contact_maps(hand, obj[:, :0], normals[:, :0])
    with pytest.raises(InputError, match="hand_normals"):
        contact_maps(hand, obj, normals, method=4)
    with pytest.raises(InputError, match="idx"):
        capsule_contact(hand, obj, normals, torch.zeros(2, hand.shape[1]))  # float indices
    with pytest.raises(InputError, match="index 0"):
        capsule_contact(hand, obj, normals, torch.full((2, hand.shape[1]), obj.shape[1]))
    with pytest.raises(InputError, match="nn_idx"):
        penetration_hinge(hand, obj, normals, nn_idx=torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(InputError, match="same non-empty"):
        asymmetric_l1(torch.zeros(2, 3), torch.zeros(2, 4))


@pytest.mark.cuda
def test_contact_maps_on_cuda_match_cpu():
    hand, obj, normals, _ = random_scene(51, dtype=torch.float32)
    cpu = contact_maps(hand, obj, normals)
    gpu = contact_maps(hand.cuda(), obj.cuda(), normals.cuda())
    assert gpu.hand.device.type == "cuda"
    torch.testing.assert_close(gpu.hand.cpu(), cpu.hand, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gpu.obj.cpu(), cpu.obj, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        penetration_hinge(hand.cuda(), obj.cuda(), normals.cuda()).cpu(), penetration_hinge(hand, obj, normals)
    )
