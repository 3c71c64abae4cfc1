//! Every shader's bindings against the slots its Rust wrapper binds, checked with naga (no GPU).
//! A mismatch would otherwise surface only as a wgpu validation panic on a machine with an adapter.

use crate::gpu::context::{Shader, Slot};
use crate::gpu::{fft, kernels};
use naga::{AddressSpace, StorageAccess};

/// Parse and validate `source`; then every `@group(0) @binding(i)` must be `slots[i]`, every slot
/// must be declared, and every entry point must exist. Returns the problems found.
fn check(name: &str, source: &str, entries: &[&str], slots: &[Slot]) -> Vec<String> {
    let module = match naga::front::wgsl::parse_str(source) {
        Ok(m) => m,
        Err(e) => return vec![format!("{name}: {}", e.emit_to_string(source))],
    };
    let mut problems = Vec::new();
    let mut validator = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    );
    if let Err(e) = validator.validate(&module) {
        problems.push(format!("{name}: invalid: {}", e.emit_to_string(source)));
    }
    let mut declared = vec![false; slots.len()];
    for (_, var) in module.global_variables.iter() {
        let Some(b) = &var.binding else { continue };
        let label = var.name.as_deref().unwrap_or("?");
        if b.group != 0 {
            problems.push(format!("{name}: `{label}` is in group {}, not 0", b.group));
            continue;
        }
        let i = b.binding as usize;
        let Some(&want) = slots.get(i) else {
            problems.push(format!(
                "{name}: `{label}` at binding {i}, but the wrapper binds {}",
                slots.len()
            ));
            continue;
        };
        let got = match var.space {
            AddressSpace::Uniform => Some(Slot::Uniform),
            AddressSpace::Storage { access } if access.contains(StorageAccess::STORE) => {
                Some(Slot::Write)
            }
            AddressSpace::Storage { .. } => Some(Slot::Read),
            _ => None,
        };
        if got != Some(want) {
            problems.push(format!(
                "{name}: `{label}` (binding {i}) is {got:?} in WGSL, {want:?} in Rust"
            ));
        }
        declared[i] = true;
    }
    for (i, d) in declared.iter().enumerate() {
        if !d {
            problems.push(format!(
                "{name}: binding {i} ({:?}) is bound but not declared",
                slots[i]
            ));
        }
    }
    for e in entries {
        if !module.entry_points.iter().any(|p| p.name == *e) {
            problems.push(format!("{name}: no entry point `{e}`"));
        }
    }
    problems
}

fn check_shader(s: &Shader) -> Vec<String> {
    check(s.key, (s.source)(), s.entries, s.slots)
}

#[test]
fn every_kernel_binds_what_its_shader_declares() {
    let problems: Vec<String> = kernels::SHADERS
        .iter()
        .flat_map(|s| check_shader(s))
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn fft_modules_bind_what_they_declare() {
    // Radix-2/3/5/7 mixes, odd and prime lengths (Bluestein), and a long line.
    let mut problems = Vec::new();
    for n in [8, 12, 181, 217, 256, 343, 2053] {
        let src = fft::shared_source(n);
        problems.extend(check(
            &format!("fft{n}"),
            &src,
            &fft::SHARED_ENTRIES,
            &fft::SLOTS,
        ));
    }
    let long = fft::long_source();
    problems.extend(check(
        "fft_long",
        &long,
        &fft::LONG_ENTRIES,
        &fft::LONG_SLOTS,
    ));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_wrong_slot_list_is_reported() {
    // The checker itself: a read-only binding claimed writable, one slot too few, one too many,
    // and a missing entry point are each caught.
    let src = (kernels::SHADERS[0].source)();
    let slots = kernels::SHADERS[0].slots;
    let mut flipped = slots.to_vec();
    let i = flipped.iter().position(|s| *s == Slot::Read).unwrap();
    flipped[i] = Slot::Write;
    assert_eq!(check("x", src, &["main"], &flipped).len(), 1);
    assert_eq!(
        check("x", src, &["main"], &slots[..slots.len() - 1]).len(),
        1
    );
    let mut more = slots.to_vec();
    more.push(Slot::Read);
    assert_eq!(check("x", src, &["main"], &more).len(), 1);
    assert_eq!(check("x", src, &["main", "nowhere"], slots).len(), 1);
    assert!(check("x", src, &["main"], slots).is_empty());
}
