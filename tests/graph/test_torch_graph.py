"""The torch module of a graph (spec version 2), `GraphModule`, against the numpy
reference of `graph_cases` (each sample alone, cut to its real steps): every new kind,
whole graphs, padding, initial state across inputs, logits, gradients, weights and
the checks of the caller's tensors."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import rnnc_torch  # noqa: E402
from graph_cases import (  # noqa: E402
    ADD_NUMBERS, CHURN, TWO_OUTPUTS, assert_rows, graph_model, random_batch, random_weights, real_lengths, reference,
)
from rnnc.errors import ArtifactError, DataError  # noqa: E402
from rnnc_torch import graph_blocks  # noqa: E402
from rnnc_torch.graph import GraphModule  # noqa: E402
from rnnc_torch.model import SpecModule  # noqa: E402

SIZES = [(1, 1), (3, 7), (17, 50)]  # (batch, steps); the two larger ones hold a sequence of length 0
SEQ = {"shape": [None, 4]}


def _att(**settings):
    return [{"name": "att", "type": "attention", "value": "v", **settings}]


# name -> (inputs, layers); the last layer is the output
KINDS = {
    "attention_dot": ({"v": SEQ, "q": SEQ}, _att(query="q")),
    "attention_dot_scale": ({"v": SEQ, "q": SEQ}, _att(query="q", scale=True)),
    "attention_general": ({"v": SEQ, "q": {"shape": [None, 3]}}, _att(query="q", score="general")),
    "attention_additive": ({"v": SEQ, "q": {"shape": [None, 3]}}, _att(query="q", score="additive", units=5)),
    "attention_dot_vector_query": ({"v": SEQ, "q": {"shape": [4]}}, _att(query="q", scale=True)),
    "attention_general_vector_query": ({"v": SEQ, "q": {"shape": [2]}}, _att(query="q", score="general")),
    "attention_additive_vector_query": ({"v": SEQ, "q": {"shape": [2]}}, _att(query="q", score="additive", units=3)),
    "attention_pooling_dot": ({"v": SEQ}, _att()),
    "attention_pooling_general": ({"v": SEQ}, _att(score="general")),
    "attention_pooling_additive": ({"v": SEQ}, _att(score="additive", units=4)),
    "attention_fixed_length_value": ({"v": {"shape": [6, 4]}, "q": SEQ}, _att(query="q", score="general")),
    "normalization_sequence": ({"s": SEQ}, [{"name": "n", "type": "normalization", "input": "s"}]),
    "normalization_static": ({"s": {"shape": [5]}}, [{"name": "n", "type": "normalization", "input": "s"}]),
    **{
        f"{kind}_sequences": ({"s": SEQ}, [
            {"name": "d1", "type": "dense", "units": 4, "input": "s"},
            {"name": "d2", "type": "dense", "units": 4, "activation": "tanh", "input": "s"},
            {"name": "m", "type": kind, "input": ["d1", "d2", "s"]},
        ])
        for kind in ("add", "multiply", "average")
    },
    "concatenate_sequences": ({"s": SEQ}, [
        {"name": "d1", "type": "dense", "units": 3, "input": "s"},
        {"name": "m", "type": "concatenate", "input": ["s", "d1"]},
    ]),
    **{
        f"{kind}_vectors": ({"a": {"shape": [3]}, "b": {"shape": [3]}}, [{"name": "m", "type": kind, "input": ["a", "b"]}])
        for kind in ("concatenate", "add", "multiply", "average")
    },
    "repeat_vector_n": ({"a": {"shape": [3]}}, [{"name": "r", "type": "repeat_vector", "n": 4, "input": "a"}]),
    "repeat_vector_like": ({"a": {"shape": [3]}, "s": SEQ}, [
        {"name": "r", "type": "repeat_vector", "like": "s", "input": "a"},
        {"name": "m", "type": "concatenate", "input": ["r", "s"]},
    ]),
    "embedding_one_id": ({"k": {"shape": [], "dtype": "int64"}, "a": {"shape": [2]}}, [
        {"name": "e", "type": "embedding", "vocab_size": 6, "dim": 3, "input": "k"},
        {"name": "m", "type": "concatenate", "input": ["e", "a"]},
    ]),
}


def _state_case(kind: str, **settings):
    decoder = {"name": "dec", "type": kind, "units": 3, "input": "b", "initial_state": "enc.state", **settings}
    return ({"a": {"shape": [None, 2]}, "b": {"shape": [None, 3]}},
            [{"name": "enc", "type": kind, "units": 3, "input": "a", **settings}, decoder])


STATES = {
    "lstm": _state_case("lstm"),
    "lstm_sequences": _state_case("lstm", return_sequences=True),
    "lstm_bidirectional": _state_case("lstm", bidirectional=True),
    "gru_bidirectional_sequences": _state_case("gru", bidirectional=True, return_sequences=True),
    "simple_rnn": _state_case("simple_rnn"),
    "simple_rnn_relu_no_bias": _state_case("simple_rnn", activation="relu", use_bias=False),
}
GRAPHS = {"churn": CHURN, "add_numbers": ADD_NUMBERS, "two_outputs": TWO_OUTPUTS}


def tensors(arrays):
    return {k: torch.from_numpy(v) for k, v in arrays.items()}


def built(model, seed=0):
    module = rnnc_torch.build_module(model).eval()
    weights = random_weights(model, seed)
    module.load_ir_state(weights)
    return module, weights


def check_parity(model, *, logits=False, give_lengths=True, seed=0):
    module, weights = built(model, seed)
    rng = np.random.default_rng(seed)
    for batch, steps in SIZES:
        inputs, lengths = random_batch(model, batch, steps, rng, empty=True)
        given = lengths if give_lengths else {}
        with torch.no_grad():
            out = module(tensors(inputs), tensors(given), logits=logits)
        assert list(out) == [o.name for o in model.outputs]
        expected = reference(model, weights, inputs, given, logits=logits)
        for name, rows in expected.items():
            assert_rows(out[name].numpy(), rows)


@pytest.mark.parametrize("case", list(KINDS), ids=list(KINDS))
def test_each_new_kind_matches_the_reference(case):
    inputs, layers = KINDS[case]
    check_parity(graph_model(inputs, layers))


@pytest.mark.parametrize("case", list(STATES), ids=list(STATES))
def test_initial_state_across_two_variable_length_inputs_matches_the_reference(case):
    inputs, layers = STATES[case]
    check_parity(graph_model(inputs, layers))


@pytest.mark.parametrize("name", list(GRAPHS), ids=list(GRAPHS))
def test_whole_graphs_match_the_reference(name):
    check_parity(graph_model(**GRAPHS[name]))


@pytest.mark.parametrize("name", ["add_numbers", "two_outputs"])
def test_logits_skip_each_outputs_final_activation_only(name):
    # two_outputs: 'flag' is an output and feeds 'again': the latter still reads probabilities
    model = graph_model(**GRAPHS[name])
    check_parity(model, logits=True)
    assert GraphModule(model).final_activations == (
        {"answer": "softmax"} if name == "add_numbers" else {"flag": "sigmoid", "tags": "softmax"})


def test_mask_zero_inputs_take_their_lengths_from_the_ids():
    check_parity(graph_model(**ADD_NUMBERS), give_lengths=False)


def test_padding_never_changes_a_result_for_every_input():
    for spec in GRAPHS.values():
        model = graph_model(**spec)
        module, _ = built(model)
        inputs, lengths = random_batch(model, 6, 9, np.random.default_rng(1))
        real = real_lengths(model, inputs, lengths)
        with torch.no_grad():
            batch = module(tensors(inputs), tensors(lengths))
            for i in range(6):
                alone_in = {k: (v[i: i + 1, : real[k][i]] if k in real else v[i: i + 1]) for k, v in inputs.items()}
                alone_lengths = {k: real[k][i: i + 1] for k in lengths}
                alone = module(tensors(alone_in), tensors(alone_lengths))
                for name, y in alone.items():
                    torch.testing.assert_close(batch[name][i, : y.shape[1]] if y.dim() == 3 else batch[name][i], y[0],
                                               rtol=0, atol=1e-6)


def test_an_empty_sequence_hands_on_its_initial_state():
    """A decoder whose sequence has no real step outputs (and passes on) the state it was given."""
    model = graph_model(*STATES["lstm"])
    module, _ = built(model)
    inputs, lengths = random_batch(model, 3, 5, np.random.default_rng(2))
    lengths["b"][1] = 0
    outputs, out_lengths = module.forward_with_lengths(tensors(inputs), tensors(lengths))
    encoder = module.blocks[0](torch.from_numpy(inputs["a"]), torch.from_numpy(lengths["a"]))[0]
    torch.testing.assert_close(outputs["dec"][1], encoder[1])
    assert not torch.allclose(outputs["dec"][0], encoder[0])
    assert out_lengths == {"dec": None}


def test_output_lengths_are_the_query_s():
    model = graph_model(**ADD_NUMBERS)
    module, _ = built(model)
    inputs, lengths = random_batch(model, 4, 6, np.random.default_rng(3))
    _, out_lengths = module.forward_with_lengths(tensors(inputs), tensors(lengths))
    assert out_lengths["answer"].tolist() == lengths["answer_in"].tolist()
    _, churn_lengths = built(graph_model(**CHURN))[0].forward_with_lengths(
        *[tensors(d) for d in random_batch(graph_model(**CHURN), 2, 3, np.random.default_rng(0))])
    assert churn_lengths == {"churn": None}


@pytest.mark.parametrize("name", [*GRAPHS, "pooling"])
def test_gradients_are_finite_with_padding_and_empty_sequences(name):
    model = graph_model(**GRAPHS[name]) if name in GRAPHS else graph_model(*KINDS["attention_pooling_additive"])
    module, weights = built(model)
    # unit variances: the floored one saturates the layers after it, whose gradients would be 0
    module.load_ir_state({k: np.ones_like(v) if k.endswith(".variance") else v for k, v in weights.items()})
    module.train()  # the trainer's path: rnnc's CPU loop for the layers without a state to hand on
    inputs, lengths = random_batch(model, 5, 8, np.random.default_rng(4), empty=True)
    out = module(tensors(inputs), tensors(lengths), logits=True, trusted=True)
    sum(y.square().sum() for y in out.values()).backward()
    grads = {n: p.grad for n, p in module.ir_parameters().items() if p.requires_grad}
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads.values()), grads


def test_a_lowering_without_the_attention_mask_fails_the_reference(monkeypatch):
    monkeypatch.setattr(graph_blocks, "_masked_softmax", lambda scores, lengths: torch.softmax(scores, dim=-1))
    with pytest.raises(AssertionError):
        check_parity(graph_model(*KINDS["attention_dot"]))


def test_attention_keeps_its_last_weights_when_asked():
    model = graph_model(**ADD_NUMBERS)
    module, _ = built(model)
    attention = module.blocks[4]
    assert isinstance(attention, graph_blocks.AttentionBlock) and attention.last_weights is None
    attention.keep_weights = True
    inputs, lengths = random_batch(model, 3, 6, np.random.default_rng(5))
    module(tensors(inputs), tensors(lengths))
    weights = attention.last_weights
    assert weights.shape == (3, 6, 6) and not weights.requires_grad
    real = torch.arange(6)[None, :] < torch.from_numpy(lengths["question"])[:, None]
    assert torch.all(weights.masked_select(~real[:, None, :]) == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 6))


def test_a_seeded_build_is_deterministic_and_starts_as_keras():
    model = graph_model(**TWO_OUTPUTS)
    states = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        states.append(rnnc_torch.build_module(model).ir_state())
    assert all(np.array_equal(states[0][k], states[1][k]) for k in states[0])
    assert not np.array_equal(states[0]["layers.1.weight_ih"], states[2]["layers.1.weight_ih"])
    assert np.all(states[0]["layers.0.mean"] == 0) and np.all(states[0]["layers.0.variance"] == 1)
    torch.manual_seed(0)
    additive = rnnc_torch.build_module(graph_model(*KINDS["attention_pooling_additive"])).ir_state()
    for name in ("layers.0.query", "layers.0.v"):
        assert np.abs(additive[name]).max() <= 0.05 and np.abs(additive[name]).max() > 0
    limit = np.sqrt(6 / (4 + 4))  # glorot over [units 4, d_v 4]
    assert np.abs(additive["layers.0.weight_value"]).max() <= limit


def test_ir_state_round_trips_and_statistics_take_no_gradient():
    model = graph_model(**TWO_OUTPUTS)
    first, weights = built(model, seed=0)
    second = rnnc_torch.build_module(model).eval()
    second.load_ir_state(first.ir_state())
    assert all(np.array_equal(second.ir_state()[k], weights[k]) for k in weights)
    params = second.ir_parameters()
    assert not params["layers.0.mean"].requires_grad and not params["layers.0.variance"].requires_grad
    assert params["layers.1.weight_ih"].requires_grad
    inputs, lengths = random_batch(model, 4, 5, np.random.default_rng(6))
    with torch.no_grad():
        a, b = first(tensors(inputs), tensors(lengths)), second(tensors(inputs), tensors(lengths))
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ArtifactError, match="missing layers.0.variance"):
        second.load_ir_state({k: v for k, v in weights.items() if k != "layers.0.variance"})


def test_build_module_lowers_a_graph_to_a_graph_module_and_a_chain_as_before():
    assert isinstance(rnnc_torch.build_module(graph_model(**CHURN)), GraphModule)
    from rnnc.spec import model_from_mapping

    chain = model_from_mapping({"rnnc": 1, "name": "chain", "input": {"shape": [None, 2]},
                                "layers": [{"type": "lstm", "units": 2}], "loss": "mse", "optimizer": "adam"})
    assert isinstance(rnnc_torch.build_module(chain), SpecModule)


def _add_batch():
    model = graph_model(**ADD_NUMBERS)
    inputs, lengths = random_batch(model, 2, 4, np.random.default_rng(0))
    return tensors(inputs), tensors(lengths)


BAD_INPUTS = [
    ("unknown and missing", lambda x, n: ({"question": x["question"], "answr_in": x["answer_in"]}, n),
     "model 'graph-test' has no input 'answr_in'; its inputs: question, answer_in\n"
     "model 'graph-test' needs input 'answer_in'"),
    ("lengths of no input", lambda x, n: (x, {**n, "answer": n["question"]}),
     "lengths given for 'answer', which takes none; inputs with lengths: question, answer_in"),
    ("rank", lambda x, n: ({**x, "question": x["question"][:, :, None]}, n),
     "input 'question' must be [batch, time], got [2, 4, 1]"),
    ("float ids", lambda x, n: ({**x, "question": x["question"].float()}, n),
     "input 'question' must hold integer token ids, got torch.float32"),
    ("id range", lambda x, n: ({**x, "answer_in": torch.tensor([[1, 2, 0, 0], [3, 15, 0, 0]])}, n),
     "token ids of 'answer_in' must lie in [0, 13] (vocab_size 14), got ids from 0 to 15"),
    ("batch", lambda x, n: ({**x, "question": x["question"][:1]}, n),
     "inputs must share their batch size, got question 1, answer_in 2"),
    ("lengths shape", lambda x, n: (x, {**n, "question": n["question"][:1]}),
     "lengths of 'question' must be integers of shape [2], got torch.int64 [1]"),
    ("lengths range", lambda x, n: (x, {**n, "question": n["question"] + 5}),
     None),  # checked below: the numbers depend on the drawn lengths
]


@pytest.mark.parametrize("change,expected", [(c[1], c[2]) for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_inputs_are_data_errors_naming_them(change, expected):
    module = rnnc_torch.build_module(graph_model(**ADD_NUMBERS))
    inputs, lengths = change(*_add_batch())
    with pytest.raises(DataError) as error:
        module(inputs, lengths)
    if expected is None:
        low, high = int(lengths["question"].min()), int(lengths["question"].max())
        expected = f"lengths of 'question' must lie in [0, 4] (its timesteps), got {low} to {high}"
    assert str(error.value) == expected


def test_one_id_per_sample_takes_no_lengths_even_with_mask_zero():
    model = graph_model({"k": {"shape": [], "dtype": "int64"}},
                        [{"name": "e", "type": "embedding", "vocab_size": 5, "dim": 2, "mask_zero": True}])
    module = rnnc_torch.build_module(model)
    ids = torch.tensor([0, 3, 4])
    torch.testing.assert_close(module({"k": ids})["e"], module.blocks[0].embedding.weight[ids])
    with pytest.raises(DataError, match="^lengths given for 'k', which takes none; inputs with lengths: none$"):
        module({"k": ids}, {"k": torch.tensor([1, 1, 1])})


def test_static_features_of_the_wrong_size_are_a_data_error():
    model = graph_model(**CHURN)
    inputs, lengths = random_batch(model, 2, 3, np.random.default_rng(0))
    inputs["profile"] = inputs["profile"][:, :4]
    with pytest.raises(DataError, match=r"^input 'profile' must be \[batch, 5\], got \[2, 4\]$"):
        rnnc_torch.build_module(model)(tensors(inputs), tensors(lengths))
