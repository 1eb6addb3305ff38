"""Bad input gets an error that names the op, the shapes or dtypes, and what was expected."""

import numpy as np
import pytest

import minitx as mt
import minitx.functional as F


def test_broadcast_mismatch_names_op_and_both_shapes():
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\), \(4,\) do not broadcast"):
        mt.ones((2, 3)) + mt.ones(4)


def test_matmul_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\)"):
        mt.ones((2, 3)) @ mt.ones((4, 5))


def test_mixed_float_dtypes_are_not_promoted_silently():
    a = mt.ones(3, dtype=np.float32)
    b = mt.ones(3, dtype=np.float64)
    with pytest.raises(TypeError, match=r"Mul: inputs have different dtypes"):
        a * b


def test_python_numbers_take_the_tensor_dtype():
    assert (mt.ones(3) * 2.5).dtype == np.float32


@pytest.mark.parametrize("make", [
    lambda t: t * 0.5, lambda t: t - 0.5, lambda t: mt.maximum(t, 1.5),
    lambda t: t + np.float64(0.5), lambda t: mt.where(t > 1, t, 0.5), lambda t: t.clip(0.5, 2.5),
    lambda t: t.masked_fill(t > 1, 0.5),
])
def test_a_float_does_not_join_an_integer_tensor_truncated(make):
    t = mt.tensor([1, 2, 3])
    with pytest.raises(TypeError, match=r"[01]\.5\)? does not fit a tensor of dtype int64"):
        make(t)
    assert (t.astype("float32") * 0.5).numpy().tolist() == [0.5, 1.0, 1.5]  # the way it names


def test_numbers_that_a_dtype_would_wrap_or_turn_into_bool_are_refused():
    with pytest.raises(TypeError, match="dtype uint8"):
        mt.tensor(np.array([1], np.uint8)) + 300  # would wrap to 44
    with pytest.raises(TypeError, match="dtype bool"):
        mt.tensor([True, False]) * 2  # would be True * True
    assert (mt.tensor([1, 2, 3]) * 2).numpy().tolist() == [2, 4, 6]
    assert mt.tensor([1, 2, 3]).clip(1, 2).numpy().tolist() == [1, 2, 2]


def test_comparisons_with_a_number_compare_its_value(device):
    t = mt.tensor([1, 2, 3], device=device)
    assert (t < 1.5).numpy().tolist() == [True, False, False]  # not 1 < 1
    assert (1.5 > t).numpy().tolist() == [True, False, False]
    assert not (t == 2.5).numpy().any()
    assert (mt.tensor(np.array([0, 5], np.uint8), device=device) > -1).numpy().all()
    assert (mt.tensor([0.1], dtype=np.float32, device=device) == 0.1).numpy().all()  # float32's 0.1


def test_arrays_must_be_wrapped_explicitly():
    with pytest.raises(TypeError, match="minitx.tensor"):
        mt.ones(3) + np.ones(3)


def test_reshape_to_a_wrong_size():
    with pytest.raises(ValueError, match=r"reshape: cannot reshape .* \(2, 3\) .* to \(4,\)"):
        mt.ones((2, 3)).reshape(4)


@pytest.mark.parametrize("index", [1.5, "a", [0.5]])
def test_unsupported_index_forms_say_what_is_supported(index):
    with pytest.raises(TypeError, match="supported indices"):
        mt.ones((3, 3))[index]


def test_index_out_of_range_names_the_shape():
    with pytest.raises(IndexError, match=r"shape \(3, 3\)"):
        mt.ones((3, 3))[5]


@pytest.mark.parametrize("index, axis, covered", [
    ([True], 0, r"\(2,\)"),  # too short: NumPy's length check, not the rows it names
    ((slice(None), [True, False]), 1, r"\(3,\)"),
    ((Ellipsis, [False, True, False]), 2, r"\(4,\)"),
    ((None, np.ones((3, 4), bool)), 0, r"\(2, 3\)")])
def test_a_boolean_mask_must_have_the_shape_of_the_axes_it_covers(device, index, axis, covered):
    x = mt.tensor(np.arange(24.0).reshape(2, 3, 4), device=device)
    with pytest.raises(IndexError, match=rf"getitem: a boolean mask .* at axis {axis} .* "
                                         rf"{covered}"):
        x[index]


@pytest.mark.parametrize("index", [[True, False], (slice(None), [True, False, True]),
                                   (Ellipsis, [True, False, False, True]),
                                   (0, [False, True, True], [1, 3]), np.ones((2, 3), bool)])
def test_boolean_masks_select_what_numpy_selects(device, index):
    data = np.arange(24.0).reshape(2, 3, 4)
    x = mt.tensor(data, device=device)
    parts = index if isinstance(index, tuple) else (index,)
    wrapped = tuple(mt.tensor(np.array(p), device=device) if isinstance(p, (list, np.ndarray))
                    else p for p in parts)
    np.testing.assert_array_equal(x[wrapped].numpy(), data[tuple(
        np.array(p) if isinstance(p, list) else p for p in parts)])


def test_cross_entropy_checks_targets():
    logits = mt.ones((4, 3))
    with pytest.raises(ValueError, match=r"targets of shape \(4,\)"):
        F.cross_entropy(logits, mt.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        F.cross_entropy(logits, mt.tensor([0, 1, 2, 3]))
    with pytest.raises(TypeError, match="integer"):
        F.cross_entropy(logits, mt.ones(4))


def test_embedding_checks_range_and_dtype():
    w = mt.ones((5, 2))
    with pytest.raises(IndexError, match=r"\[0, 5\)"):
        F.embedding(mt.tensor([0, 5]), w)
    with pytest.raises(TypeError, match="integer"):
        F.embedding(mt.ones(2), w)


def test_masks_must_be_boolean_and_broadcast():
    x = mt.ones((2, 3))
    with pytest.raises(TypeError, match="bool"):
        x.masked_fill(mt.ones((2, 3)), 0.0)
    with pytest.raises(ValueError, match=r"masked_fill: shapes \(4,\), \(2, 3\)"):
        x.masked_fill(mt.tensor([True, False, True, False]), 0.0)


def test_layer_norm_parameter_shapes():
    with pytest.raises(ValueError, match=r"weight must have shape \(4,\)"):
        F.layer_norm(mt.ones((2, 4)), mt.ones(3))


def test_attention_shapes():
    with pytest.raises(ValueError, match="scaled_dot_product_attention"):
        F.scaled_dot_product_attention(mt.ones((1, 2, 4)), mt.ones((1, 2, 3)), mt.ones((1, 2, 3)))


def test_axis_out_of_range():
    with pytest.raises(ValueError, match="sum: axis 2 is out of range for a 2-d tensor"):
        mt.ones((2, 3)).sum(axis=2)


def test_item_needs_one_element():
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        mt.ones(2).item()


def test_linear_names_input_and_weight_shapes():
    with pytest.raises(ValueError, match=r"linear: .* got input \(2, 3\) and weight \(4, 5\)"):
        F.linear(mt.ones((2, 3)), mt.ones((4, 5)))
    with pytest.raises(ValueError, match=r"linear: bias must have shape \(4,\) .* got \(3,\)"):
        F.linear(mt.ones((2, 5)), mt.ones((4, 5)), mt.ones(3))


@pytest.mark.parametrize("axes", [(0, 1, 5), (0, 1, -4), (0, 1, 3)])
def test_transpose_refuses_axes_out_of_range_instead_of_wrapping_them(axes):
    with pytest.raises(ValueError, match=rf"transpose: axes \({axes[0]}, {axes[1]}, {axes[2]}\) "
                                         r"are out of range for a tensor of shape \(2, 3, 4\)"):
        mt.zeros(2, 3, 4).transpose(axes)
    assert mt.zeros(2, 3, 4).permute(-1, 0, -2).shape == (4, 2, 3)


def test_flatten_start_after_end():
    with pytest.raises(ValueError, match="flatten: start_axis 2 comes after end_axis 1"):
        mt.zeros(2, 3, 4).flatten(2, 1)
    assert mt.zeros(2, 3, 4).flatten(-2, -1).shape == (2, 12)


def test_one_hot_checks_classes_and_dtype():
    with pytest.raises(IndexError, match=r"one_hot: classes must lie in \[0, 3\), got values "
                                         r"from -1 to 3"):
        F.one_hot(mt.tensor([0, 3, -1]), 3)
    with pytest.raises(TypeError, match="one_hot: indices must be an integer Tensor"):
        F.one_hot(mt.tensor([0.0, 1.0]), 3)


def test_mse_loss_checks_reduction_and_shapes():
    with pytest.raises(ValueError, match="mse_loss: reduction must be 'mean', 'sum' or 'none'"):
        F.mse_loss(mt.ones(4), mt.zeros(4), reduction="avg")
    with pytest.raises(ValueError, match=r"mse_loss: prediction \(3, 1\) and target \(3,\)"):
        F.mse_loss(mt.zeros(3, 1), mt.tensor([1.0, 2.0, 3.0]))  # would broadcast to (3, 3)


@pytest.mark.parametrize("name, call", [
    ("softmax", F.softmax), ("log_softmax", F.log_softmax), ("layer_norm", F.layer_norm),
    ("rms_norm", F.rms_norm), ("gelu", F.gelu), ("sigmoid", F.sigmoid), ("tanh", mt.tanh),
    ("exp", mt.exp), ("log", mt.log), ("sqrt", mt.sqrt), ("dropout", F.dropout),
    ("var", lambda t: t.var()), ("mean", lambda t: t.mean()),
    ("logsumexp", lambda t: t.logsumexp()), ("div", lambda t: t / 2), ("div", lambda t: 1 / t),
    ("div", lambda t: t / t),
    ("cross_entropy", lambda t: F.cross_entropy(t.reshape(1, 3), mt.tensor([0]))),
    ("scaled_dot_product_attention",
     lambda t: F.scaled_dot_product_attention(*[t.reshape(1, 3, 1)] * 3)),
])
def test_float_ops_name_an_integer_input(name, call):
    with pytest.raises(TypeError, match=f"{name}: expected a float tensor, got dtype int64"):
        call(mt.tensor([1, 2, 3]))


@pytest.mark.parametrize("exponent", [0.5, -1, 2.0])
def test_integer_tensors_take_only_powers_of_their_dtype(exponent):
    t = mt.tensor([1, 2, 3])
    with pytest.raises(TypeError, match=rf"pow: a tensor of dtype int64 to the power "
                                        rf"{exponent} is not of its dtype"):
        t ** exponent
    with pytest.raises(TypeError, match="pow: base \\*\\* tensor needs a float tensor"):
        2 ** t
    np.testing.assert_array_equal((t ** 2).numpy(), [1, 4, 9])  # stays int64
    assert (t ** 2).dtype == np.int64


@pytest.mark.parametrize("name, call", [("neg", lambda m: -m), ("abs", abs),
                                        ("relu", F.relu)])
def test_ops_without_a_boolean_version_name_a_mask(name, call):
    with pytest.raises(TypeError, match=f"{name}: expected a numeric tensor, got dtype bool"):
        call(mt.tensor([True, False]))


def test_where_takes_two_numbers_and_masks_combine_only_when_they_broadcast(device):
    cond = mt.tensor([True, False], device=device)
    picked = mt.where(cond, 1.0, 0.0)  # the first number sets the dtype, as mt.tensor(1.0)
    assert picked.dtype == np.float32 and picked.device == device
    np.testing.assert_array_equal(picked.numpy(), [1.0, 0.0])
    assert mt.where(cond, 2, 0).dtype == np.int64
    with pytest.raises(TypeError, match="where: the number 0.5 does not fit .* int64"):
        mt.where(cond, 1, 0.5)
    with pytest.raises(ValueError, match=r"logical_and: shapes \(2,\), \(3,\) do not "):
        cond & mt.tensor([True, False, True], device=device)
    with pytest.raises(ValueError, match=r"logical_or: shapes \(2,\), \(3,\) do not "):
        cond | mt.tensor([True, False, True], device=device)


@pytest.mark.parametrize("data, value", [(np.array([1, 2], np.uint8), -1),
                                         (np.array([True, False]), 5), (np.array([1, 2]), 1.5)])
def test_pad_refuses_a_value_the_dtype_would_change(data, value):
    with pytest.raises(TypeError, match=f"pad: the number {value} does not fit"):
        F.pad(mt.tensor(data), ((1, 1),), value)


@pytest.mark.parametrize("widths", [((1.5, 1),), (1, 1), ((1, -1),), ((True, 1),), ((1, 1, 1),)])
def test_pad_widths_are_pairs_of_non_negative_integers(widths):
    with pytest.raises(ValueError, match="pad: pad_width needs one pair of non-negative integers"):
        F.pad(mt.tensor([1.0, 2.0]), widths)


def test_pad_of_a_scalar_and_with_numpy_integers(device):
    assert F.pad(mt.tensor(3.0, device=device), ()).item() == 3.0
    padded = F.pad(mt.tensor([1, 2], device=device), ((1, np.int64(1)),), 7)
    np.testing.assert_array_equal(padded.numpy(), [7, 1, 2, 7])


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_checks_its_statistics_dtype_device_and_the_channels(training):
    x = mt.randn(4, 3, dtype=np.float64)
    with pytest.raises(TypeError, match="batch_norm: running_mean is float32 on cpu, the input "
                                        "float64 on cpu; they must match"):
        F.batch_norm(x, mt.zeros(3), mt.ones(3), training=training)
    with pytest.raises(TypeError, match="batch_norm: running_mean is float32 on cpu, the input "
                                        "float32 on strict"):
        F.batch_norm(mt.randn(4, 3, device="strict"), mt.zeros(3), mt.ones(3),
                     training=training)
    with pytest.raises(ValueError, match=r"batch_norm: input \(2, 0, 3\) has no channels"):
        F.batch_norm(mt.zeros((2, 0, 3)), mt.zeros(0), mt.ones(0), training=training)
    with pytest.raises(ValueError, match=r"batch_norm: expected a float Tensor \(B, C, ...\), "
                                         r"got \(3,\)"):
        F.batch_norm(mt.zeros(3), mt.zeros(3), mt.ones(3), training=training)


def test_argmax_argmin_any_all_check_their_axes(device):
    x = mt.tensor(np.arange(6.0).reshape(2, 3), device=device)
    for name in ("argmax", "argmin", "any", "all"):
        with pytest.raises(ValueError, match=f"{name}: axis 5 is out of range for a 2-d"):
            getattr(x, name)(5)
    with pytest.raises(TypeError, match="argmax: axis must be an int, got tuple"):
        x.argmax((0, 1))
    with pytest.raises(ValueError, match=r"argmin: a tensor of shape \(0, 3\) has no values "
                                         r"to pick from"):
        mt.zeros((0, 3), device=device).argmin()
    with pytest.raises(ValueError, match="along axis 0"):
        mt.zeros((0, 3), device=device).argmax(0)
    assert mt.zeros((0, 3), device=device).argmax(1).shape == (0,)  # nothing to pick, per row
    assert x.argmax(-1).numpy().tolist() == [2, 2] and x.all((0, 1)).item() is False
    assert mt.tensor(3.0, device=device).argmax(0).item() == 0  # a 0-d tensor's one axis


@pytest.mark.parametrize("stride", [1.5, None, True, (1, 2, 3)])
def test_conv_and_pool_strides_are_ints_or_pairs(stride):
    x, w = mt.randn(1, 1, 5, 5), mt.randn(1, 1, 3, 3)
    with pytest.raises(ValueError, match="conv2d: stride must be an int or a pair of ints"):
        F.conv2d(x, w, stride=stride)
    if stride is not None:  # a pool's stride None is its kernel size
        with pytest.raises(ValueError, match="max_pool2d: stride must be an int or a pair"):
            F.max_pool2d(x, 2, stride)


def test_split_takes_a_numpy_integer():
    pieces = mt.randn(4, 5).split(np.int64(2), 1)
    assert [p.shape for p in pieces] == [(4, 2), (4, 2), (4, 1)]


def test_generators_reshape_sizes_and_stack_shapes_are_named():
    with pytest.raises(TypeError, match="dropout: generator must be a numpy.random.Generator"):
        F.dropout(mt.ones(4), 0.5, generator=0)
    with pytest.raises(TypeError, match="randn: generator must be"):
        mt.randn(2, generator=1)
    with pytest.raises(ValueError, match=r"reshape: sizes must be non-negative \(or one -1\)"):
        mt.zeros(6).reshape(-2, -3)
    with pytest.raises(ValueError, match=r"stack: shapes \[\(2,\), \(3,\)\] differ \(stack needs"):
        mt.stack([mt.zeros(2), mt.zeros(3)])


# ---- PyTorch's argument orders, where minitx's differ --------------------------------------

def test_attention_causal_must_be_a_bool_so_a_ported_dropout_p_is_caught(device):
    """PyTorch's order is (q, k, v, attn_mask, dropout_p, is_causal); minitx's fifth argument
    is `causal`, so sdpa(q, q, q, None, 0.1) would silently mask causally with no dropout."""
    q = mt.randn(1, 2, 3, 4, device=device)
    with pytest.raises(TypeError, match=r"scaled_dot_product_attention: causal must be True or "
                                        r"False, got 0\.1 .*fifth argument is causal.*"
                                        r"dropout_p="):
        F.scaled_dot_product_attention(q, q, q, None, 0.1)
    with pytest.raises(TypeError, match="causal must be True or False, got 1 "):
        F.scaled_dot_product_attention(q, q, q, causal=1)
    causal = F.scaled_dot_product_attention(q, q, q, causal=True).numpy()
    np.testing.assert_array_equal(  # a NumPy bool (e.g. from a comparison) is a bool
        F.scaled_dot_product_attention(q, q, q, causal=np.bool_(True)).numpy(), causal)


def test_attention_mask_must_be_bool_or_float(device):
    """An integer 0/1 mask is neither: cast to float it would become an additive bias (0 or 1
    added to the scores, masking nothing), so the error says which two kinds there are."""
    q = mt.randn(1, 2, 3, 4, device=device)
    ones = mt.ones((3, 3), dtype="int64", device=device)
    with pytest.raises(TypeError, match=r"scaled_dot_product_attention: mask must be bool "
                                        r"\(True = may attend\) or floating \(an additive bias"
                                        r".*got int64.*astype\(bool\)"):
        F.scaled_dot_product_attention(q, q, q, ones)
    with pytest.raises(TypeError, match="mask must be None or a Tensor, got ndarray"):
        F.scaled_dot_product_attention(q, q, q, np.ones((3, 3), dtype=bool))
    np.testing.assert_array_equal(  # the fix the message names: 1 = may attend
        F.scaled_dot_product_attention(q, q, q, ones.astype(bool)).numpy(),
        F.scaled_dot_product_attention(q, q, q).numpy())


def test_layer_norm_and_rms_norm_name_their_arguments_for_a_normalized_shape():
    x = mt.randn(2, 3)
    for norm in (F.layer_norm, F.rms_norm):
        name = norm.__name__
        with pytest.raises(TypeError, match=rf"{name}: weight must be None or a Tensor \(D,\), "
                                            rf"got tuple \(3,\).*{name}\(x, weight"
                                            r".*normalizes over the last axis"):
            norm(x, (3,))
        with pytest.raises(TypeError, match=rf"{name}: weight must be None or a Tensor"):
            norm(x, 3)
    with pytest.raises(TypeError, match=r"layer_norm: bias must be None or a Tensor \(D,\), "
                                        r"got list"):
        F.layer_norm(x, mt.ones(3), [0.0, 0.0, 0.0])


@pytest.mark.parametrize("ignore_index", [None, 1.5, "x", np.float64(2.0)])
def test_cross_entropy_ignore_index_must_be_an_int(ignore_index):
    z, t = mt.randn(2, 3), mt.tensor([0, 1])
    with pytest.raises(TypeError, match=rf"cross_entropy: ignore_index must be an int, got "
                                        rf"{type(ignore_index).__name__}"):
        F.cross_entropy(z, t, ignore_index)


def test_cross_entropy_names_pytorch_s_third_argument_weight():
    z, t = mt.randn(2, 3), mt.tensor([0, 1])
    with pytest.raises(TypeError, match=r"cross_entropy: ignore_index must be an int, got "
                                        r"Tensor.*third argument is ignore_index.*weight"):
        F.cross_entropy(z, t, mt.ones(3))
    expected = F.cross_entropy(z, t, -100).item()  # ints pass, NumPy's too
    assert F.cross_entropy(z, t, np.int64(-100)).item() == expected
