"""PyTorch side of bench/torch-step.ts (issue 17): the bench's own OPT model in plain PyTorch, driven over JSON lines.

Not part of the project (which has no Python): an optional comparison, run only where python3 with torch is
installed. It reads the same checkpoints the bench writes (safetensors parsed here: Debian has no
python3-safetensors) and answers one JSON line per command read from stdin:
  {"cmd": "threads", "n": 2}                      torch.set_num_threads
  {"cmd": "load", "kind": "full"|"wct", "dir": D, "ids": [...], "targets": [...]}
  {"cmd": "forward"}                              no-grad forward + loss of the loaded model
  {"cmd": "step"}                                 zero grads, forward, backward, clip to norm 1, AdamW
  {"cmd": "free"}                                 drops the loaded model
Replies carry seconds per phase, the loss, and the process's peak RSS (ru_maxrss) in MiB.

Shapes: ids [T], h [T, C], q/k/v [H, T, D], logits [T, V]. The WCT model keeps each packed linear's frozen base as
one uint8 code per weight (unpacked once from the checkpoint's bit stream), per-row fp32 scale and zero point, and
trains the fp32 weak columns through OWQ's QuantMatMul formulation (xvyaward/owq owq/quant.py): forward and
backward each dequantize the base, put the weak columns in, and multiply densely; dWeak = dY^T X[:, weak].
"""
import json
import resource
import struct
import sys
import time

import torch
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "U8": torch.uint8, "I32": torch.int32}
EPS = 1e-5


def read_safetensors(path):
    """Every tensor of a safetensors file: floats as fp32, integers as stored."""
    out = {}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        base = 8 + n
        for name, info in header.items():
            if name == "__metadata__":
                continue
            begin, end = info["data_offsets"]
            f.seek(base + begin)
            raw = bytearray(f.read(end - begin))
            t = torch.frombuffer(raw, dtype=DTYPES[info["dtype"]]).reshape(info["shape"]) if end > begin else None
            if t is None:
                t = torch.empty(info["shape"], dtype=DTYPES[info["dtype"]])
            out[name] = t.float() if t.is_floating_point() else t.clone()
    return out


def unpack_codes(qweight, cols, bits):
    """Codes [N, K] from rows of 8-code blocks of `bits` bytes, code k at bits k*bits.. of the row's LSB-first stream."""
    rows = qweight.shape[0]
    blocks = qweight.reshape(rows, -1, bits).to(torch.int64)
    word = sum(blocks[:, :, i] << (8 * i) for i in range(bits))
    shifts = torch.arange(8, dtype=torch.int64) * bits
    codes = (word.unsqueeze(-1) >> shifts) & ((1 << bits) - 1)
    return codes.reshape(rows, -1)[:, :cols].to(torch.uint8).contiguous()


class PackedBase:
    """A packed linear's frozen part (codes, per-row scale and zero, weak column indices, bias)."""

    def __init__(self, t, name, bits, cols):
        self.codes = unpack_codes(t[f"{name}.qweight"], cols, bits)
        if t[f"{name}.scales"].shape[1] != 1:
            raise ValueError(f"{name}: only per-row scales (group_size 0) are modelled here")
        self.scales = t[f"{name}.scales"]
        self.zeros = t[f"{name}.zeros"].float()
        self.idx = t[f"{name}.weak_idx"].long()
        self.bias = t.get(f"{name}.bias")

    def dequantize(self, weak):
        """W [N, K] = s * (code - z), the weak columns put in (OWQ's fn_dequant, then out[outids] = oweight)."""
        w = (self.codes.float() - self.zeros) * self.scales
        w[:, self.idx] = weak
        return w


class QuantMatMul(torch.autograd.Function):
    """OWQ's QuantMatMul: y = x W^T + b over a dequantized base, backward dX = dY W, dWeak = dY^T X[:, weak]."""

    @staticmethod
    def forward(ctx, x, weak, base):
        ctx.base = base
        ctx.save_for_backward(weak, x.index_select(-1, base.idx))
        return F.linear(x, base.dequantize(weak), base.bias)

    @staticmethod
    def backward(ctx, g):
        weak, x_weak = ctx.saved_tensors
        base = ctx.base
        gx = g @ base.dequantize(weak) if ctx.needs_input_grad[0] else None
        gweak = g.reshape(-1, g.shape[-1]).t() @ x_weak.reshape(-1, x_weak.shape[-1])
        return gx, gweak, None


class Opt:
    """Pre-LN OPT (opt-125m's layout: ReLU, learned positions offset by 2, lm_head tied to the token embedding)."""

    LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "fc1", "fc2"]

    def __init__(self, d, kind):
        cfg = json.load(open(f"{d}/config.json"))
        t = read_safetensors(f"{d}/model.safetensors")
        qc = json.load(open(f"{d}/quantization_config.json")) if kind == "wct" else None
        p = "model.decoder."
        self.heads = cfg["num_attention_heads"]
        self.layers = cfg["num_hidden_layers"]
        c = cfg["hidden_size"]
        self.embed = t[p + "embed_tokens.weight"]
        self.pos = t[p + "embed_positions.weight"]
        self.final_ln = (t[p + "final_layer_norm.weight"], t[p + "final_layer_norm.bias"])
        self.blocks = []
        self.params = []
        for i in range(self.layers):
            b = f"{p}layers.{i}."
            block = {
                "ln1": (t[b + "self_attn_layer_norm.weight"], t[b + "self_attn_layer_norm.bias"]),
                "ln2": (t[b + "final_layer_norm.weight"], t[b + "final_layer_norm.bias"]),
            }
            for role in self.LINEARS:
                name = b + role
                if kind == "wct":
                    base = PackedBase(t, name, qc["bits"], c if role != "fc2" else cfg["ffn_dim"])
                    weak = t[f"{name}.weak"].requires_grad_(True)
                    self.params.append(weak)
                    block[role] = (lambda x, weak=weak, base=base: QuantMatMul.apply(x, weak, base))
                else:
                    w, bias = t[name + ".weight"], t[name + ".bias"]
                    block[role] = (lambda x, w=w, bias=bias: F.linear(x, w, bias))
            self.blocks.append(block)
        if kind == "full":
            self.params = [v for v in t.values() if v.is_floating_point()]
            for v in self.params:
                v.requires_grad_(True)

    def loss(self, ids, targets):
        seq = ids.shape[0]
        c = self.embed.shape[1]
        hd = c // self.heads
        h = self.embed[ids] + self.pos[torch.arange(seq) + 2]
        mask = torch.ones(seq, seq, dtype=torch.bool).triu(1)
        for blk in self.blocks:
            x = F.layer_norm(h, (c,), *blk["ln1"], EPS)
            q, k, v = (blk[r](x).reshape(seq, self.heads, hd).transpose(0, 1) for r in self.LINEARS[:3])
            s = (q @ k.transpose(1, 2)) * (hd**-0.5)
            a = torch.softmax(s.masked_fill(mask, float("-inf")), -1) @ v
            h = h + blk["self_attn.out_proj"](a.transpose(0, 1).reshape(seq, c))
            x = F.layer_norm(h, (c,), *blk["ln2"], EPS)
            h = h + blk["fc2"](torch.relu(blk["fc1"](x)))
        logits = F.layer_norm(h, (c,), *self.final_ln, EPS) @ self.embed.t()
        return F.cross_entropy(logits, targets, ignore_index=-100)


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    model = opt = ids = targets = None
    for line in sys.stdin:
        cmd = json.loads(line)
        reply = {}
        if cmd["cmd"] == "threads":
            torch.set_num_threads(cmd["n"])
        elif cmd["cmd"] == "load":
            model = Opt(cmd["dir"], cmd["kind"])
            ids = torch.tensor(cmd["ids"], dtype=torch.long)
            targets = torch.tensor(cmd["targets"], dtype=torch.long)
            opt = torch.optim.AdamW(model.params, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0)
        elif cmd["cmd"] == "free":
            model = opt = None
        elif cmd["cmd"] == "forward":
            t0 = time.perf_counter()
            with torch.no_grad():
                loss = model.loss(ids, targets)
            reply = {"forward_s": time.perf_counter() - t0, "loss": loss.item()}
        elif cmd["cmd"] == "step":
            opt.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            loss = model.loss(ids, targets)
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            torch.nn.utils.clip_grad_norm_(model.params, 1.0)
            opt.step()
            t3 = time.perf_counter()
            reply = {"forward_s": t1 - t0, "backward_s": t2 - t1, "optimizer_s": t3 - t2, "loss": loss.item()}
        reply["peak_mib"] = peak_mib()
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
