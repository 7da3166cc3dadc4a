"""Matmul FLOPs of costmodel.ops against torch.utils.flop_counter.FlopCounterMode on a Hugging
Face GPT2LMHeadModel (small random config, eager attention: in torch 2.13 the CPU SDPA kernel is
not counted by FlopCounterMode), per operator kind, for a prefill and a cached decode step."""

from __future__ import annotations

from collections import defaultdict

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import costmodel as cm  # noqa: E402
from costmodel.hfconfig import spec_from_hf_config  # noqa: E402

BATCH, PROMPT = 2, 17
N_LAYER, N_EMBD, N_HEAD, VOCAB = 2, 64, 4, 1000


@pytest.fixture(scope="module")
def hf():
    cfg = transformers.GPT2Config(n_layer=N_LAYER, n_embd=N_EMBD, n_head=N_HEAD,
                                  vocab_size=VOCAB, n_positions=256, bos_token_id=0,
                                  eos_token_id=0, attn_implementation="eager")
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    assert model.config._attn_implementation == "eager"
    ids = torch.randint(0, VOCAB, (BATCH, PROMPT))
    with torch.no_grad():
        with FlopCounterMode(display=False) as fc_prefill:
            out = model(ids, use_cache=True)
        with FlopCounterMode(display=False) as fc_decode:
            model(torch.randint(0, VOCAB, (BATCH, 1)), past_key_values=out.past_key_values,
                  use_cache=True)
    return cfg, _by_operator(fc_prefill), _by_operator(fc_decode)


def _by_operator(fc: FlopCounterMode) -> dict[str, int]:
    """FlopCounterMode's per-module counts mapped onto costmodel's operator names (summed over
    layers). The attn module's own count includes c_attn and c_proj; what remains are the two
    eager matmuls QKᵀ and PV, split evenly (equal shapes: B·H·q·K·d_h each)."""
    counts = {k: sum(v.values()) for k, v in fc.get_flop_counts().items()}
    out: dict[str, int] = defaultdict(int)
    for name, flops in counts.items():
        parts = name.split(".")
        if name.endswith("attn.c_attn"):
            out["qkv_proj"] += flops
        elif name.endswith("attn.c_proj"):
            out["out_proj"] += flops
        elif name.endswith("mlp.c_fc"):
            out["mlp_up"] += flops
        elif name.endswith("mlp.c_proj"):
            out["mlp_down"] += flops
        elif name.endswith("lm_head"):
            out["lm_head"] += flops
        elif parts[-1] == "attn":
            inner = flops - counts[name + ".c_attn"] - counts[name + ".c_proj"]
            out["qk_scores"] += inner // 2
            out["attn_v"] += inner // 2
    out["total"] = counts["Global"]
    return dict(out)


def _ours(cfg, new_tokens: int, cached_tokens: int) -> dict[str, float]:
    spec = spec_from_hf_config(cfg.to_dict())
    a = cm.analyze(spec, "a100-80gb", batch=BATCH, new_tokens=new_tokens,
                   cached_tokens=cached_tokens, lm_head="all")
    return dict(zip(a.ops["op"], a.ops["flops"], strict=True))


# By hand (2 FLOPs per multiply-add; T = B·q tokens, K = c + q keys, d = 64, H = 4, d_h = 16,
# L = 2, V = 1000):
#   prefill q = 17, c = 0, T = 34:
#     qkv_proj  L·2·T·d·3d     = 2·2·34·64·192   = 1,671,168
#     qk_scores L·2·B·H·q·K·d_h = 2·2·2·4·17·17·16 = 147,968   (attn_v the same)
#     out_proj  L·2·T·d·d      = 2·2·34·64·64    =   557,056
#     mlp_up    L·2·T·d·4d     = 2·2·34·64·256   = 2,228,224   (mlp_down the same)
#     lm_head   2·T·d·V (all positions)         = 2·34·64·1000 = 4,352,000
#   decode q = 1, c = 17, T = 2, K = 18:
#     qkv_proj 98,304; qk_scores 2·2·2·4·1·18·16 = 9,216 (attn_v the same); out_proj 32,768;
#     mlp_up 131,072 (mlp_down the same); lm_head 2·2·64·1000 = 256,000
PREFILL = {"qkv_proj": 1_671_168, "qk_scores": 147_968, "attn_v": 147_968, "out_proj": 557_056,
           "mlp_up": 2_228_224, "mlp_down": 2_228_224, "lm_head": 4_352_000}
DECODE = {"qkv_proj": 98_304, "qk_scores": 9_216, "attn_v": 9_216, "out_proj": 32_768,
          "mlp_up": 131_072, "mlp_down": 131_072, "lm_head": 256_000}


def test_spec_from_hf_config(hf):
    cfg = hf[0]
    spec = spec_from_hf_config(cfg.to_dict())
    assert (spec.n_layers, spec.d_model, spec.n_heads, spec.d_ff, spec.vocab_size) == \
        (N_LAYER, N_EMBD, N_HEAD, 4 * N_EMBD, VOCAB)


@pytest.mark.parametrize(("phase", "q", "c", "hand"), [("prefill", PROMPT, 0, PREFILL),
                                                      ("decode", 1, PROMPT, DECODE)])
def test_matmul_flops_match_flopcounter(hf, phase, q, c, hand):
    cfg, fc_prefill, fc_decode = hf
    counted = fc_prefill if phase == "prefill" else fc_decode
    ours = _ours(cfg, q, c)
    for op, expected in hand.items():
        assert counted[op] == expected, (phase, op, "FlopCounterMode vs hand")
        assert ours[op] == expected, (phase, op, "costmodel vs hand")
    # FlopCounterMode counts nothing elementwise: its total is exactly our matmuls + attention
    assert counted["total"] == sum(hand.values())
    matmul_like = {"qkv_proj", "qk_scores", "attn_v", "out_proj", "mlp_up", "mlp_down",
                   "lm_head"}
    assert sum(v for k, v in ours.items() if k in matmul_like) == counted["total"]
