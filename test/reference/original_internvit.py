"""A from-scratch re-implementation of the *original* OpenGVLab InternViT computation, used only as
the reference in tests: key names and the fused qkv are those of the original repo
(modeling_intern_vit.py), so a state dict of this module is a checkpoint in the original layout."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        var = x.float().pow(2).mean(-1, keepdim=True)
        return self.weight * (x.float() * torch.rsqrt(var + self.eps)).to(x.dtype)


def make_norm(kind, d, eps):
    return RMSNorm(d, eps) if kind == "rms_norm" else nn.LayerNorm(d, eps=eps)


class Embeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, p = c["hidden_size"], c["patch_size"]
        self.patch_size = p
        self.grid = c["image_size"] // p
        self.class_embedding = nn.Parameter(torch.randn(1, 1, d))
        self.patch_embedding = nn.Conv2d(3, d, p, p)
        self.position_embedding = nn.Parameter(torch.randn(1, self.grid**2 + 1, d))

    def forward(self, x):
        pe = self.patch_embedding(x)
        b, d, h, w = pe.shape
        pe = pe.flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(b, 1, -1)
        emb = torch.cat([cls, pe], 1)
        pos = self.position_embedding[:, 1:].reshape(1, self.grid, self.grid, -1)
        pos = pos.permute(0, 3, 1, 2)
        pos = F.interpolate(pos.float(), size=(h, w), mode="bicubic", align_corners=False)
        pos = pos.reshape(1, d, h * w).permute(0, 2, 1)
        pos = torch.cat([self.position_embedding[:, :1], pos], 1)
        return emb + pos


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["hidden_size"]
        self.h = c["num_attention_heads"]
        self.qkv = nn.Linear(d, 3 * d, bias=c["qkv_bias"])
        self.proj = nn.Linear(d, d)
        self.qk_norm = c["qk_normalization"]
        if self.qk_norm:
            self.q_norm = RMSNorm(d, c["layer_norm_eps"])
            self.k_norm = RMSNorm(d, c["layer_norm_eps"])

    def forward(self, x):
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if self.qk_norm:
            q = self.q_norm(q.transpose(1, 2).flatten(-2)).view(b, n, self.h, -1).transpose(1, 2)
            k = self.k_norm(k.transpose(1, 2).flatten(-2)).view(b, n, self.h, -1).transpose(1, 2)
        a = (q * (d // self.h) ** -0.5) @ k.transpose(-2, -1)
        x = (a.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d)
        return self.proj(x)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.fc1 = nn.Linear(c["hidden_size"], c["intermediate_size"])
        self.fc2 = nn.Linear(c["intermediate_size"], c["hidden_size"])

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["hidden_size"]
        self.attn = Attention(c)
        self.mlp = MLP(c)
        self.norm1 = make_norm(c["norm_type"], d, c["layer_norm_eps"])
        self.norm2 = make_norm(c["norm_type"], d, c["layer_norm_eps"])
        self.ls1 = nn.Parameter(c["initializer_factor"] * torch.ones(d))
        self.ls2 = nn.Parameter(c["initializer_factor"] * torch.ones(d))

    def forward(self, x):
        x = x + self.attn(self.norm1(x)) * self.ls1
        return x + self.mlp(self.norm2(x)) * self.ls2


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layers = nn.ModuleList(Layer(c) for _ in range(c["num_hidden_layers"]))


class OriginalInternViT(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = Embeddings(c)
        self.encoder = Encoder(c)

    def forward(self, x):
        """Returns all hidden states: [embeddings, layer1, ..., layerN] (B, 1 + h*w, d)."""
        h = self.embeddings(x)
        out = [h]
        for layer in self.encoder.layers:
            h = layer(h)
            out.append(h)
        return out


def tiny_original_config(**kw):
    c = dict(model_type="intern_vit_6b", architectures=["InternVisionModel"], hidden_size=32,
             num_hidden_layers=3, num_attention_heads=4, intermediate_size=64, patch_size=14,
             image_size=56, qkv_bias=True, qk_normalization=False, norm_type="layer_norm",
             layer_norm_eps=1e-6, hidden_act="gelu", initializer_factor=0.1, drop_path_rate=0.0,
             dropout=0.0, attention_dropout=0.0, initializer_range=0.02, use_flash_attn=False,
             num_channels=3)
    c.update(kw)
    return c
