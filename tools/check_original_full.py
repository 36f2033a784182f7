#!/usr/bin/env python3
"""By-hand check on full-size original-layout checkpoints (not in CI: hundreds of MB): builds
them with the upstream projects' code (random values), converts them with timmconv and compares
every tensor with what timm 1.0.31 loads via create_model(pretrained_cfg_overlay=dict(file=...)).

    PYTHONPATH=<open_clip> python tools/check_original_full.py clip      # needs clip_b16_f32.pth, see below
    UP=<dinov2 tree> python tools/check_original_full.py dinov2
    UP=<dinov3 tree> python tools/check_original_full.py dinov3
    python tools/check_original_full.py compose   # after dinov2: --layout hub and --features-only

The CLIP input is open_clip.create_model('ViT-B-16', pretrained=None)'s state dict in float32
(599 MB), saved as $WORK/clip_b16_f32.pth; WORK defaults to /tmp/layout-big.
"""

import os, subprocess, sys, torch, timm
from safetensors.torch import load_file
B = os.environ.get('TIMMCONV_BIN', 'target/debug/timmconv')
WORK = os.environ.get('WORK', '/tmp/layout-big')
def check(src, arch, extra_kw, extra_args):
    out = src + '.' + '_'.join(extra_args).replace('-', '') + '.safetensors'
    if os.path.exists(out): os.remove(out)
    r = subprocess.run([B, 'convert', src, '--model', arch, '-o', out, *extra_args], capture_output=True, text=True)
    if r.returncode:
        print('FAIL convert', arch, extra_args, r.stderr[-500:]); return
    got = load_file(out)
    m = timm.create_model(arch, pretrained=True, pretrained_cfg_overlay=dict(file=src), **extra_kw)
    sd = m.state_dict()
    bad = [k for k in got if k not in sd or not torch.equal(got[k], sd[k].to(got[k].dtype))]
    missing = [k for k in sd if k not in got]
    print('OK' if not bad else 'DIFF', arch, extra_args, 'tensors', len(got), 'bad', bad[:5], 'not written (reinit)', missing[:6], len(missing))
which = sys.argv[1]
if which == 'clip':
    src = WORK + '/clip_b16_f32.pth'
    check(src, 'vit_base_patch16_clip_224.openai', {}, [])
    check(src, 'vit_base_patch16_clip_224.openai', dict(in_chans=4, num_classes=10), ['--in-chans', '4', '--num-classes', '10'])
    check(src, 'vit_base_patch16_clip_224.openai', dict(img_size=320, num_classes=0), ['--img-size', '320', '--num-classes', '0'])
elif which in ('dinov2', 'dinov3'):
    sys.path.insert(0, os.environ['UP'])
    torch.manual_seed(0)
    if which == 'dinov2':
        from dinov2.hub.backbones import dinov2_vits14_reg, dinov2_vits14
        for name, fn, arch in [('v2s', dinov2_vits14, 'vit_small_patch14_dinov2'), ('v2sreg', dinov2_vits14_reg, 'vit_small_patch14_reg4_dinov2')]:
            m = fn(pretrained=False)
            with torch.no_grad():
                for p in m.parameters(): p.copy_(torch.randn_like(p) * 0.2)
            src = f'{WORK}/{name}.pth'; torch.save(m.state_dict(), src)
            check(src, arch, {}, [])
            check(src, arch, dict(in_chans=4, num_classes=10, img_size=224), ['--in-chans', '4', '--num-classes', '10', '--img-size', '224'])
    if which == 'dinov3':
        from dinov3.hub.backbones import dinov3_vits16, dinov3_convnext_tiny
        for name, fn, arch in [('v3s', dinov3_vits16, 'vit_small_patch16_dinov3'), ('v3s_b', dinov3_vits16, 'vit_small_patch16_dinov3_qkvb'), ('v3cnt', dinov3_convnext_tiny, 'convnext_tiny.dinov3_lvd1689m')]:
            m = fn(pretrained=False)
            m.init_weights() if hasattr(m, 'init_weights') else None
            with torch.no_grad():
                for p in m.parameters(): p.copy_(torch.randn_like(p) * 0.2)
            sd = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in m.state_dict().items()}
            src = f'{WORK}/{name}.pth'; torch.save(sd, src)
            check(src, arch, {}, [])
            check(src, arch, dict(in_chans=4, num_classes=10), ['--in-chans', '4', '--num-classes', '10'])
if which == 'compose':
    import shutil
    src, arch = WORK + '/v2sreg.pth', 'vit_small_patch14_reg4_dinov2'
    out = WORK + '/hub_v2sreg'
    shutil.rmtree(out, ignore_errors=True)
    r = subprocess.run([B, 'convert', src, '--model', arch, '--in-chans', '4', '--layout', 'hub', '-o', out],
                       capture_output=True, text=True)
    print('hub rc', r.returncode, r.stderr[-300:] if r.returncode else '')
    a = timm.create_model('local-dir:' + out, pretrained=True).state_dict()
    b = timm.create_model(arch, pretrained=True, pretrained_cfg_overlay=dict(file=src), in_chans=4).state_dict()
    print('hub', 'OK' if a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a) else 'DIFF')
    out = WORK + '/feat_v2sreg.safetensors'
    if os.path.exists(out):
        os.remove(out)
    r = subprocess.run([B, 'convert', src, '--model', arch, '--features-only', '-o', out], capture_output=True, text=True)
    got = load_file(out)
    sd = timm.create_model(arch, pretrained=True, pretrained_cfg_overlay=dict(file=src), features_only=True).state_dict()
    bad = [k for k in sd if k not in got or not torch.equal(got[k], sd[k])]
    print('features', 'OK' if not bad and len(got) == len(sd) else ('DIFF', bad[:5]))
