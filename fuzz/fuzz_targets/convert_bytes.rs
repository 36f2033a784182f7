#![no_main]
//! The whole conversion pipeline on in-memory input: open, plan an in_chans/num_classes
//! adaptation with a cast, and produce every output tensor.

use libfuzzer_sys::fuzz_target;
use timmconv::adapt::{Adaptation, Plan};
use timmconv::{Checkpoint, DType, OpenOptions};

fuzz_target!(|data: &[u8]| {
    let Some((&knob, rest)) = data.split_first() else { return };
    let Ok(c) = Checkpoint::from_bytes(rest.to_vec(), &OpenOptions::default()) else { return };
    let first = c.tensors().first().map(|t| t.name.trim_end_matches(".weight").to_owned());
    let a = Adaptation {
        in_chans: Some(usize::from(knob % 8) + 1),
        num_classes: Some(usize::from(knob >> 5)),
        first_conv: first.clone().into_iter().collect(),
        classifier: c.tensors().last().map(|t| t.name.trim_end_matches(".weight").to_owned()).into_iter().collect(),
        cfg_num_classes: Some(1000),
        drop_unadaptable: knob & 1 == 0,
        dtype: [None, Some(DType::BF16), Some(DType::F16), Some(DType::F32)][usize::from(knob >> 6)],
        ..Adaptation::default()
    };
    if let Ok(plan) = Plan::new(&c, &a) {
        for p in &plan.tensors {
            let _ = plan.bytes(&c, p);
        }
    }
});
