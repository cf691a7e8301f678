//! File capabilities: `cap_from_text` syntax (as `setcap` takes it) to the
//! `security.capability` xattr value, `struct vfs_cap_data` revision 2.

/// The capability names of Linux, each at its number (`CAP_CHOWN` is 0),
/// without the `cap_` prefix. `all` means every one of them.
const NAMES: [&str; 41] = [
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

/// The name of the xattr that holds file capabilities.
pub(super) const XATTR_NAME: &[u8] = b"security.capability";
/// `VFS_CAP_REVISION_2`: two 32-bit words per set, 64 capabilities.
const VFS_CAP_REVISION_2: u32 = 0x0200_0000;
/// The single effective bit of a file: raise all permitted caps on exec.
const VFS_CAP_FLAGS_EFFECTIVE: u32 = 0x0000_0001;

/// The three capability sets as bit masks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Sets {
    effective: u64,
    inheritable: u64,
    permitted: u64,
}

/// The `security.capability` value for `text` such as `cap_net_raw+ep` or
/// `cap_chown,cap_kill=eip cap_setuid+p`.
pub(super) fn xattr_value(text: &str) -> Result<Vec<u8>, String> {
    let mut sets = Sets::default();
    for clause in text.split_whitespace() {
        apply_clause(&mut sets, clause)?;
    }
    encode(sets)
}

/// Applies one clause: a list of names, then operators with their flags.
fn apply_clause(sets: &mut Sets, clause: &str) -> Result<(), String> {
    let op_at = clause
        .find(['=', '+', '-'])
        .ok_or_else(|| format!("`{clause}` has no operator (`=`, `+` or `-`)"))?;
    let (list, mut ops) = clause.split_at(op_at);
    // An empty list means all capabilities, but only before `=` (`=ep`).
    let caps = match list {
        "" if ops.starts_with('=') => all(),
        "" => return Err(format!("`{clause}` names no capability")),
        _ => names(list)?,
    };
    while let Some(op) = ops.chars().next() {
        let rest = &ops[1..];
        let end = rest.find(['=', '+', '-']).unwrap_or(rest.len());
        let flags = flags(&rest[..end], clause)?;
        if op != '=' && flags == [false; 3] {
            return Err(format!("`{clause}`: `{op}` needs flags (e, i, p)"));
        }
        apply_op(sets, caps, op, flags);
        ops = &rest[end..];
    }
    Ok(())
}

/// The mask of a comma-separated list of names.
fn names(list: &str) -> Result<u64, String> {
    let mut mask = 0;
    for name in list.split(',') {
        let lower = name.to_ascii_lowercase();
        mask |= if lower == "all" {
            all()
        } else {
            lower
                .strip_prefix("cap_")
                .and_then(|short| NAMES.iter().position(|&n| n == short))
                .map(|bit| 1u64 << bit)
                .ok_or_else(|| unknown(name))?
        };
    }
    Ok(mask)
}

fn unknown(name: &str) -> String {
    format!("unknown capability `{name}` (names are like cap_net_raw, or `all`)")
}

fn all() -> u64 {
    (1u64 << NAMES.len()) - 1
}

/// Which of effective, inheritable, permitted `flags` names.
fn flags(flags: &str, clause: &str) -> Result<[bool; 3], String> {
    let mut out = [false; 3];
    for c in flags.chars() {
        let i = "eip"
            .find(c)
            .ok_or_else(|| format!("`{clause}`: unknown flag `{c}` (e, i and p are the flags)"))?;
        out[i] = true;
    }
    Ok(out)
}

/// `=` sets exactly the flags given for `caps`, `+` raises them, `-` lowers them.
fn apply_op(sets: &mut Sets, caps: u64, op: char, [e, i, p]: [bool; 3]) {
    let targets = [
        (&mut sets.effective, e),
        (&mut sets.inheritable, i),
        (&mut sets.permitted, p),
    ];
    for (set, flagged) in targets {
        match op {
            '=' if flagged => *set |= caps,
            '=' => *set &= !caps,
            '+' if flagged => *set |= caps,
            '-' if flagged => *set &= !caps,
            _ => {}
        }
    }
}

/// Encodes `vfs_cap_data`: `magic_etc`, then permitted and inheritable of
/// the low 32 capabilities, then of the high 32, all little-endian.
fn encode(sets: Sets) -> Result<Vec<u8>, String> {
    let granted = sets.permitted | sets.inheritable;
    if granted == 0 {
        return Err(
            "the capabilities grant nothing (to drop them use rmxattr=security.capability)".into(),
        );
    }
    // A file has one effective bit, which raises every permitted cap; so,
    // like libcap, accept effective only as none or all of them.
    if sets.effective != 0 && sets.effective != granted {
        return Err(
            "effective capabilities must be none, or all the permitted and \
                    inheritable ones (a file has a single effective bit)"
                .into(),
        );
    }
    let flags = if sets.effective != 0 {
        VFS_CAP_FLAGS_EFFECTIVE
    } else {
        0
    };
    let mut value = Vec::with_capacity(20);
    value.extend_from_slice(&(VFS_CAP_REVISION_2 | flags).to_le_bytes());
    for half in [0, 32] {
        value.extend_from_slice(&((sets.permitted >> half) as u32).to_le_bytes());
        value.extend_from_slice(&((sets.inheritable >> half) as u32).to_le_bytes());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> String {
        let value = xattr_value(text).unwrap();
        value.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn encodes_like_setcap() {
        // Values read with `getfattr -e hex` after `setcap TEXT file`.
        assert_eq!(
            hex("cap_net_bind_service+ep"),
            "0100000200040000000000000000000000000000"
        );
        assert_eq!(
            hex("cap_chown+i"),
            "0000000200000000010000000000000000000000"
        );
        assert_eq!(hex("=ep"), "01000002ffffffff00000000ff01000000000000");
        assert_eq!(hex("all=ep"), hex("=ep"));
        assert_eq!(
            hex("cap_chown,cap_kill+eip"),
            "0100000221000000210000000000000000000000"
        );
        assert_eq!(hex("CAP_CHOWN+ep"), hex("cap_chown=ep"));
        assert_eq!(
            hex("cap_chown+pe-e"),
            "0000000201000000000000000000000000000000"
        );
        assert_eq!(hex("cap_chown=p cap_chown+e"), hex("cap_chown=pe"));
        assert_eq!(
            hex("all=ep cap_chown-ep"),
            "01000002feffffff00000000ff01000000000000"
        );
        assert_eq!(
            hex("cap_perfmon,cap_bpf=ep"),
            "010000020000000000000000c000000000000000"
        );
    }

    #[test]
    fn refuses_what_setcap_refuses() {
        for bad in [
            "cap_chown",
            "+ep",
            "cap_chown+x",
            "cap_chown+",
            "cap_chown+ep,",
            "cap_chown,,cap_kill+ep",
            "cap_nope+ep",
            "chown+ep",
            "cap_chown+p cap_kill+ep",
            "cap_chown=i cap_kill=ep",
            "=",
            "",
            "cap_chown+e",
        ] {
            assert!(xattr_value(bad).is_err(), "{bad}");
        }
        assert!(xattr_value("cap_nope+ep").unwrap_err().contains("cap_nope"));
    }
}
