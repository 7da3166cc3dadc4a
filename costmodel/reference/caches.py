"""The reference model's KV caches: the dynamic cache (seed-001 contract) grown in place, and
the static cache (gpt-fast style), with the layouts their attention reads fastest.

**Dynamic cache.** The caller sees seed 001's contract: a list with one ``[k, v]`` per layer,
each of shape (B, c, C_kv) (``C_kv = n_kv_head · head_dim``, before the head split), or
``None`` for a layer not yet populated. The tensors are *views* into a per-layer buffer with
spare capacity: a step writes its q new rows in place after the c cached ones and returns
views one step longer, so nothing is copied but the new rows. When the buffer is full it is
reallocated with geometric growth (:func:`grown_capacity`: at least double) and the held rows
copied once, an amortised cost of O(1) rows per step. A sliding-window layer (window W) keeps
the last W − 1 rows; its view slides along the buffer, and when it reaches the end the kept
rows move to the front of a new buffer (again amortised).

Caches derived from one another share their buffer: stepping an *older* cache writes rows
that a later cache also holds (as rewinding a static cache does); that is what rolling back
speculative tokens wants (:meth:`DynamicKVCache.crop`), and :meth:`DynamicKVCache.clone`
gives a private copy for branching. Plain ``[k, v]`` tensors (a cache built elsewhere) are
accepted: they are copied into a new buffer on the first step.

**Layouts.** ``channel``: the buffer is (B, C_kv, capacity) — each head's K and V are
(head_dim × positions) row-major, so a decode step's q·Kᵀ and Vᵀ·p are streaming
matrix-vector products (the explicit-matmul ``eager`` attention), and the caller's (B, c, C_kv)
tensor is a transposed view. ``token``: (B, capacity, C_kv), the caller's tensor a slice, each
head's K (positions × head_dim) with unit stride on head_dim as fused SDPA kernels want.
``head``: the static cache's (B, n_kv_head, max_len, head_dim) of gpt-fast. ``split``: the
static cache of the explicit-matmul attention, K head-major (a step writes each head's new row
contiguously, and q·Kᵀ streams it) and V channel-major (Vᵀ·p streams it).

**Static cache.** :class:`StaticKVCache` preallocates ``max_len`` positions per layer and
writes in place at ``input_pos``; a sliding-window layer holds a ring of
R = min(W − 1, max_len) slots (its allocation is the W − 1 positions the KV formula counts) and
attends to the ring plus the new tokens (:meth:`StaticKVCache.ring`).
"""

from __future__ import annotations

import torch
import torch.nn as nn

LAYOUTS = ("channel", "token", "head", "split")
#: Spare rows a (re)allocated dynamic buffer has at least (and half the rows it holds).
MIN_ROOM = 64


def grown_capacity(needed: int, old: int, limit: int) -> int:
    """Rows of a reallocated buffer that must hold ``needed`` rows: at least twice the old
    capacity and ``needed`` + max(64, needed / 2), at most ``limit`` (the block size)."""
    return max(needed, min(limit, max(2 * old, needed + max(MIN_ROOM, needed // 2))))


class _Buffer:
    """One layer's K and V buffers of a dynamic cache (never resized: growth makes a new one)."""

    __slots__ = ("k", "v", "layout", "capacity")

    def __init__(self, like: torch.Tensor, capacity: int, layout: str, fill=torch.empty):
        B, _, C = like.shape
        shape = (B, C, capacity) if layout == "channel" else (B, capacity, C)
        self.k = fill(shape, dtype=like.dtype, device=like.device)
        self.v = fill(shape, dtype=like.dtype, device=like.device)
        self.layout = layout
        self.capacity = capacity

    def rows(self, which: str, start: int, end: int) -> torch.Tensor:
        """Rows [start, end) as the caller's (B, n, C_kv) view."""
        buf = self.k if which == "k" else self.v
        if self.layout == "channel":
            return buf[:, :, start:end].transpose(1, 2)
        return buf[:, start:end]

    def write(self, start: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Rows ``start ..`` ← ``k``, ``v`` (B, q, C_kv)."""
        end = start + k.size(1)
        if self.layout == "channel":
            self.k[:, :, start:end] = k.transpose(1, 2)
            self.v[:, :, start:end] = v.transpose(1, 2)
        else:
            self.k[:, start:end] = k
            self.v[:, start:end] = v

    def heads(self, start: int, end: int, n_kv_head: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows [start, end) as (B, n_kv_head, n, head_dim) views for the attention."""
        if self.layout == "channel":
            B, C, _ = self.k.shape
            return tuple(b[:, :, start:end].view(B, n_kv_head, C // n_kv_head, end - start)
                         .transpose(-2, -1) for b in (self.k, self.v))
        B, _, C = self.k.shape
        return tuple(b[:, start:end].view(B, end - start, n_kv_head, C // n_kv_head)
                     .transpose(1, 2) for b in (self.k, self.v))

    @property
    def nbytes(self) -> int:
        return self.k.nbytes + self.v.nbytes


class KVEntry(list):
    """One layer's ``[k, v]`` of a dynamic cache: (B, n, C_kv) views of rows [start, end) of a
    buffer, with ``length`` the positions the sequence has (n = length for a full-attention
    layer, min(length, W − 1) for a sliding-window one)."""

    def __init__(self, buffer: _Buffer, start: int, end: int, length: int):
        k, v = buffer.rows("k", start, end), buffer.rows("v", start, end)
        super().__init__([k, v])
        self.buffer, self.start, self.end, self.length = buffer, start, end, length
        self._views = (k, v)

    def intact(self) -> bool:
        """Whether the list still holds the views it was made with (else: plain tensors)."""
        return len(self) == 2 and self[0] is self._views[0] and self[1] is self._views[1]

    def narrowed(self, start: int, end: int, length: int) -> KVEntry:
        return KVEntry(self.buffer, start, end, length)


def _entry_length(entry) -> int:
    if isinstance(entry, KVEntry) and entry.intact():
        return entry.length
    return int(entry[0].size(1))


class DynamicKVCache(list):
    """Seed-001 dynamic cache: a list with one ``[k, v]`` (or ``None``) per layer, ``k`` and
    ``v`` of shape (B, seq, C_kv) (see the module docstring for how they are stored)."""

    @property
    def seq_len(self) -> int:
        """Positions the cached sequences have (0 when empty)."""
        lengths = [_entry_length(e) for e in self if e is not None]
        return max(lengths) if lengths else 0

    @property
    def batch_size(self) -> int | None:
        for e in self:
            if e is not None:
                return int(e[0].size(0))
        return None

    @property
    def nbytes(self) -> int:
        """Bytes of the cached rows (Σ ``nbytes`` of every k and v view): what the KV formula
        counts for the positions held."""
        return sum(t.nbytes for entry in self if entry is not None for t in entry)

    @property
    def allocated_nbytes(self) -> int:
        """Bytes of the buffers behind the views (capacity included; each buffer once)."""
        seen: dict[int, int] = {}
        for e in self:
            if e is None:
                continue
            if isinstance(e, KVEntry) and e.intact():
                seen[id(e.buffer)] = e.buffer.nbytes
            else:
                seen[id(e)] = sum(t.nbytes for t in e)
        return sum(seen.values())

    def crop(self, length: int) -> DynamicKVCache:
        """Keep the first ``length`` positions (rolls back rejected speculative tokens). A
        sliding-window layer that no longer holds the rows the shorter sequence needs is
        refused."""
        out = DynamicKVCache()
        for e in self:
            if e is None:
                out.append(None)
            elif isinstance(e, KVEntry) and e.intact():
                drop = max(0, e.length - length)
                if drop and e.end - e.start < e.length:    # a window layer already slid
                    raise ValueError(f"crop: a sliding-window layer holds only positions "
                                     f"{e.length - (e.end - e.start)}..{e.length - 1}; it "
                                     f"cannot be rolled back to {length}")
                out.append(e.narrowed(e.start, e.end - drop, e.length - drop))
            else:
                out.append([e[0][:, :length], e[1][:, :length]])
        return out

    def clone(self) -> DynamicKVCache:
        """A private copy (own buffers): stepping it leaves this cache untouched."""
        out = DynamicKVCache()
        for e in self:
            if e is None:
                out.append(None)
                continue
            n = int(e[0].size(1))
            layout = e.buffer.layout if isinstance(e, KVEntry) and e.intact() else "token"
            buf = _Buffer(e[0], max(n, 1), layout)
            buf.write(0, e[0], e[1])
            out.append(KVEntry(buf, 0, n, _entry_length(e)))
        return out


def blank_entry(batch: int, width: int, length: int, layout: str, limit: int,
                window: int | None, dtype: torch.dtype, device) -> KVEntry:
    """A layer's entry for a sequence of ``length`` positions whose K and V are zeros (what a
    decode step's timing needs — the values do not change its work — without running the
    prefill): the rows a layer holds (a window layer min(length, W − 1)) in a buffer with the
    capacity a prefill would have left."""
    rows = length if window is None else min(length, window - 1)
    cap = grown_capacity(rows, 0, limit) if window is None \
        else max(rows, min(limit, 2 * rows + MIN_ROOM))
    like = torch.empty(batch, 0, width, dtype=dtype, device=device)
    return KVEntry(_Buffer(like, cap, layout, torch.zeros), 0, rows, length)


def append_rows(entry, k: torch.Tensor, v: torch.Tensor, n_kv_head: int, layout: str,
                limit: int, window: int | None, position: int
                ) -> tuple[KVEntry, torch.Tensor, torch.Tensor]:
    """Add the q new rows ``k``, ``v`` (B, q, C_kv) of one layer to its dynamic-cache
    ``entry`` (``None``, a :class:`KVEntry` or plain tensors) for a sequence at ``position``.
    Returns the new entry and the keys and values the new tokens attend to, (B, n_kv_head,
    K, head_dim) views: the rows the layer holds plus the new ones (a window layer holds at
    most W − 1). ``limit``: the most rows a buffer needs (the block size)."""
    q = k.size(1)
    keep = None if window is None else window - 1
    if entry is None:
        held, buffer, start, end = 0, None, 0, 0
    elif isinstance(entry, KVEntry) and entry.intact():
        buffer, start, end = entry.buffer, entry.start, entry.end
        held = end - start
    else:                                   # plain tensors: copy them into a buffer once
        held, buffer, start, end = int(entry[0].size(1)), None, 0, 0
    if buffer is None or end + q > buffer.capacity:
        old = 0 if buffer is None else buffer.capacity
        if keep is None:
            new = _Buffer(k, grown_capacity(held + q, old, limit), layout)
        else:                               # a window layer compacts into a new buffer
            new = _Buffer(k, max(held + q, min(limit, 2 * (held + q) + MIN_ROOM)), layout)
        if held:
            src_k = entry[0] if buffer is None else buffer.rows("k", start, end)
            src_v = entry[1] if buffer is None else buffer.rows("v", start, end)
            new.write(0, src_k, src_v)
        buffer, start, end = new, 0, held
    buffer.write(end, k, v)
    keys, values = buffer.heads(start, end + q, n_kv_head)
    new_end = end + q
    new_start = start if keep is None else max(start, new_end - keep)
    return KVEntry(buffer, new_start, new_end, position + q), keys, values


class StaticKVCache(nn.Module):
    """Per-layer static cache: preallocated K and V buffers written in place.

    ``layout="head"`` (gpt-fast's ``KVCache``): (B, n_kv_head, max_len, head_dim) buffers;
    ``"split"``: K so, V (B, n_kv_head, head_dim, max_len). With ``window`` W, the layer keeps
    a ring of R = min(W − 1, max_len) slots in the head layout (position t in slot t mod R)."""

    def __init__(self, batch_size: int, n_kv_head: int, max_len: int, head_dim: int,
                 dtype: torch.dtype = torch.float32, device: torch.device | str | None = None,
                 layout: str = "head", window: int | None = None):
        super().__init__()
        if layout not in ("head", "split"):
            raise ValueError(f"layout must be 'head' or 'split', got {layout!r}")
        self.window = window
        self.logical_max_len = max_len
        slots = max_len if window is None else min(window - 1, max_len)
        self.layout = "head" if window is not None else layout
        head = (batch_size, n_kv_head, slots, head_dim)
        channel = (batch_size, n_kv_head, head_dim, slots)
        self.register_buffer("k_cache", torch.zeros(head, dtype=dtype, device=device),
                             persistent=False)
        self.register_buffer("v_cache", torch.zeros(head if self.layout == "head" else channel,
                                                    dtype=dtype, device=device),
                             persistent=False)

    @property
    def batch_size(self) -> int:
        return self.k_cache.size(0)

    @property
    def max_len(self) -> int:
        """Positions the cache accepts (a window layer's ring holds fewer)."""
        return self.logical_max_len

    @property
    def slots(self) -> int:
        return self.k_cache.size(2)

    @property
    def nbytes(self) -> int:
        """Bytes actually allocated for this layer's K and V buffers."""
        return self.k_cache.nbytes + self.v_cache.nbytes

    def update(self, input_pos: int, k: torch.Tensor, v: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write ``k, v`` (B, n_kv_head, q, hd) at ``input_pos`` in place; return positions
        0 .. input_pos + q − 1 as (B, n_kv_head, K, hd) views (full-attention layers)."""
        end = input_pos + k.size(2)
        self.k_cache[:, :, input_pos:end] = k
        if self.layout == "head":
            self.v_cache[:, :, input_pos:end] = v
            return self.k_cache[:, :, :end], self.v_cache[:, :, :end]
        self.v_cache[:, :, :, input_pos:end] = v.transpose(-2, -1)
        return self.k_cache[:, :, :end], self.v_cache[..., :end].transpose(-2, -1)

    def ring(self, input_pos: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A window layer before writing at ``input_pos``: the valid slots' K and V views
        (B, n_kv_head, n, hd), n = min(input_pos, R)."""
        n = min(input_pos, self.slots)
        return self.k_cache[:, :, :n], self.v_cache[:, :, :n]

    def ring_positions(self, input_pos: int) -> torch.Tensor:
        """The absolute position each valid slot holds before writing at ``input_pos``:
        slot j holds the latest t < input_pos with t ≡ j (mod R)."""
        R = self.slots
        j = torch.arange(min(input_pos, R), device=self.k_cache.device)
        return j if input_pos <= R else input_pos - 1 - torch.remainder(input_pos - 1 - j, R)

    def ring_write(self, input_pos: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Write the new ``k, v`` (B, n_kv_head, q, hd) of positions input_pos .. into their
        slots (only the last R of them are kept)."""
        R, q = self.slots, k.size(2)
        if R == 0:
            return
        first = max(input_pos, input_pos + q - R)
        slots = torch.arange(first, input_pos + q, device=k.device) % R
        self.k_cache[:, :, slots] = k[:, :, first - input_pos:]
        self.v_cache[:, :, slots] = v[:, :, first - input_pos:]


__all__ = ["DynamicKVCache", "KVEntry", "LAYOUTS", "MIN_ROOM", "StaticKVCache", "append_rows",
           "blank_entry", "grown_capacity"]
