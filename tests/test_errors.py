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
    ("var", lambda t: t.var()),
    ("cross_entropy", lambda t: F.cross_entropy(t.reshape(1, 3), mt.tensor([0]))),
    ("scaled_dot_product_attention",
     lambda t: F.scaled_dot_product_attention(*[t.reshape(1, 3, 1)] * 3)),
])
def test_float_ops_name_an_integer_input(name, call):
    with pytest.raises(TypeError, match=f"{name}: expected a float tensor, got dtype int64"):
        call(mt.tensor([1, 2, 3]))


def test_generators_reshape_sizes_and_stack_shapes_are_named():
    with pytest.raises(TypeError, match="dropout: generator must be a numpy.random.Generator"):
        F.dropout(mt.ones(4), 0.5, generator=0)
    with pytest.raises(TypeError, match="randn: generator must be"):
        mt.randn(2, generator=1)
    with pytest.raises(ValueError, match=r"reshape: sizes must be non-negative \(or one -1\)"):
        mt.zeros(6).reshape(-2, -3)
    with pytest.raises(ValueError, match=r"stack: shapes \[\(2,\), \(3,\)\] differ \(stack needs"):
        mt.stack([mt.zeros(2), mt.zeros(3)])
