//! `timmconv verify`

use crate::args::VerifyArgs;
use crate::Outcome;

/// Runs `verify`.
#[cfg(feature = "torch")]
pub fn run(a: VerifyArgs) -> anyhow::Result<Outcome> {
    use crate::args::DeviceArg;
    use crate::printer;
    use timmconv::verify::{verify, DeviceChoice, VerifyOptions};
    if let Some(path) = &a.report {
        crate::check_svg_name(path)?;
    }
    let opts = VerifyOptions {
        device: match a.device {
            DeviceArg::Auto => DeviceChoice::Auto,
            DeviceArg::Cpu => DeviceChoice::Cpu,
            DeviceArg::Cuda => DeviceChoice::Cuda,
        },
        atol: a.atol,
        rtol: a.rtol,
        allow_unused: a.allow_unused,
    };
    let r = verify(&a.weights, &a.module, &a.fixture, &opts).map_err(crate::wording::flags)?;
    if let Some(path) = &a.report {
        let svg = timmconv::chart::parity::svg(&timmconv::chart::parity::Report {
            subject: format!(
                "{} in {} on {}, fixture {}",
                a.weights.display(),
                a.module.display(),
                r.device,
                a.fixture.display()
            ),
            reference: &r.reference_logits,
            output: &r.logits,
            atol: r.atol,
            rtol: r.rtol,
            passed: r.passed,
        })?;
        crate::write_file(path, svg.as_bytes())?;
    }
    if a.json {
        printer::json(&r)?;
    } else {
        printer::line(format_args!(
            "{} on {}",
            if r.passed { "PASS" } else { "FAIL" },
            r.device
        ))?;
        printer::line(format_args!(
            "  max abs diff {:.3e}, max rel diff {:.3e} (atol {:.0e}, rtol {:.0e})",
            r.max_abs_diff, r.max_rel_diff, r.atol, r.rtol
        ))?;
        printer::line(format_args!(
            "  cosine {:.9}, top-1 agreement {:.3}, top-5 agreement {:.3}, output {:?}",
            r.cosine_similarity, r.top1_agreement, r.top5_agreement, r.output_shape
        ))?;
        printer::line(format_args!(
            "  {} tensors from the weights, {} kept from the module{}",
            r.from_weights,
            r.from_module.len(),
            if r.from_module.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.from_module.join(", "))
            }
        ))?;
        printer::line(format_args!(
            "  load {:.3} s, forward {:.3} s",
            r.load_seconds, r.forward_seconds
        ))?;
    }
    Ok(if r.passed {
        Outcome::Success
    } else {
        Outcome::Finding
    })
}

/// Without the `torch` feature there is no libtorch to run the model with.
#[cfg(not(feature = "torch"))]
pub fn run(_a: VerifyArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!(
        "this timmconv was built without libtorch; rebuild with the `torch` feature: \
         LIBTORCH_USE_PYTORCH=1 cargo build --release --features torch \
         (with a python that has torch 2.11.0 first on PATH; see docs/verification.md)"
    )
}
