//! Converts a shipped fixture for 4-channel input with no classifier, then reads the adapted
//! stem back as an ndarray: what a crate that wants timm weights in its own model code does.
//!
//! ```sh
//! cargo run --example convert_and_read -- [CHECKPOINT] [MODEL.TAG]
//! ```

use std::path::PathBuf;

use timmconv::{Checkpoint, Conversion, OpenOptions, WriteOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let input = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "fixtures/ckpt/test_resnet.f32.zip.pth".into()),
    );
    let model = args
        .next()
        .unwrap_or_else(|| "test_resnet.r160_in1k".into());

    // timm's pretrained cfg (from the embedded registry) names the stem and the classifier
    let plan = Conversion::from_file(&input)
        .model(&model)?
        .in_chans(4)
        .num_classes(0)
        .plan()?;
    let stems: Vec<String> = plan
        .report()
        .adapted
        .iter()
        .map(|a| a.key.clone())
        .collect();

    let out = std::env::temp_dir().join(format!(
        "{}_4ch.safetensors",
        plan.model().unwrap_or("model")
    ));
    let write = WriteOptions::default().overwrite(true);
    let report = plan.write(&out, &write)?;
    for a in &report.changes.adapted {
        println!("adapted {} {:?} -> {:?}", a.key, a.from_shape, a.to_shape);
    }
    for d in &report.changes.dropped {
        println!("dropped {} ({})", d.key, d.reason);
    }

    // the converted file, read as ndarray views borrowed from its mapping
    let converted = Checkpoint::open(&out, &OpenOptions::default())?;
    for stem in &stems {
        let w = converted.array::<f32>(stem)?;
        println!(
            "{stem}: shape {:?}, borrowed from the file: {}, mean {:.6}",
            w.shape(),
            w.is_view(),
            w.mean().unwrap_or(f32::NAN)
        );
    }
    println!("wrote {}", out.display());
    Ok(())
}
