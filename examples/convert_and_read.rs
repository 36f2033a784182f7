//! Converts a shipped fixture for 4-channel input with no classifier, then reads the adapted
//! stem back as an ndarray: what a crate that wants timm weights in its own model code does.
//!
//! ```sh
//! cargo run --example convert_and_read -- [CHECKPOINT] [MODEL.TAG]
//! ```

use std::path::PathBuf;

use timmconv::{convert, registry, Checkpoint, ConvertOptions, OpenOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let input = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "fixtures/ckpt/test_resnet.f32.zip.pth".into()),
    );
    let model = args
        .next()
        .unwrap_or_else(|| "test_resnet.r160_in1k".into());

    // what timm's pretrained cfg says about the stem and the classifier
    let (arch, cfg) = registry::lookup(&model)?;
    let cfg = cfg.ok_or("no pretrained cfg for that name")?;
    let mut opts = ConvertOptions::default();
    opts.adapt.first_conv = cfg.first_conv();
    opts.adapt.classifier = cfg.classifier();
    opts.adapt.cfg_num_classes = cfg.num_classes();
    opts.adapt.base_chans = cfg.in_chans();
    opts.adapt.in_chans = Some(4);
    opts.adapt.num_classes = Some(0);
    opts.model = Some(arch.name.clone());
    opts.tag = Some(cfg.tag.clone());
    opts.overwrite = true;

    let out = std::env::temp_dir().join(format!("{}_4ch.safetensors", arch.name));
    let report = convert(&input, &out, &opts, |_, _| {})?;
    for a in &report.plan.adapted {
        println!("adapted {} {:?} -> {:?}", a.key, a.from_shape, a.to_shape);
    }
    for d in &report.plan.dropped {
        println!("dropped {} ({})", d.key, d.reason);
    }

    // the converted file, read as ndarray views borrowed from its mapping
    let converted = Checkpoint::open(&out, &OpenOptions::default())?;
    for stem in &opts.adapt.first_conv {
        let w = converted.array::<f32>(&format!("{stem}.weight"))?;
        println!(
            "{stem}.weight: shape {:?}, borrowed from the file: {}, mean {:.6}",
            w.shape(),
            w.is_view(),
            w.mean().unwrap_or(f32::NAN)
        );
    }
    println!("wrote {}", out.display());
    Ok(())
}
