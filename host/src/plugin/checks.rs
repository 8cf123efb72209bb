//! What the host checks of what a plugin says and does, before any of it is used or shown: its
//! identity (name, version, extension), any text it produces, the size of its output relative
//! to its input, and the summary of a trap.

use super::*;

/// Raw bytes of `rows` rows of `coins` coins with `extras` extra columns, as the host holds
/// them: what an output cap is relative to.
pub fn raw_bytes(rows: usize, coins: usize, extras: usize) -> usize {
    rows.saturating_mul(48 + 8 * extras)
        .saturating_add(coins.saturating_mul(64))
}

/// Raw bytes of a batch (see [`raw_bytes`]), counting its coin ids' real lengths.
pub fn batch_raw_bytes(b: &sdk::Batch) -> usize {
    raw_bytes(b.len(), 0, b.extra.len())
        .saturating_add(b.coins.iter().map(|c| c.len() + 16).sum::<usize>())
}

/// Text a plugin produced (names, messages, log lines) made safe for logs and terminals:
/// control characters (escape sequences, bells, carriage returns) are shown escaped, never
/// passed through; newlines and tabs become spaces. At most 4 KiB is kept.
pub fn clean_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(4096));
    for c in s.chars() {
        if out.len() >= 4096 {
            out.push('…');
            break;
        }
        match c {
            '\n' | '\t' | '\r' => out.push(' '),
            c if c.is_control() || ('\u{200b}'..='\u{200f}').contains(&c) || c == '\u{202e}' => {
                out.extend(c.escape_default())
            }
            c => out.push(c),
        }
    }
    out
}

/// Checks what a plugin says about itself before strata uses any of it: the name is used in
/// policy files, the catalog and logs, the extension in file names. Refused, not repaired: a
/// plugin that describes itself with a path, an escape sequence or an empty name does not load.
pub(super) fn check_identity(
    origin: &str,
    name: &str,
    version: &str,
    extension: Option<&str>,
) -> Result<()> {
    let ok_name = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if !ok_name {
        bail!(
            "plugin {origin}: refusing its name \"{}\": a plugin name is 1 to 64 of a-z, 0-9, `-` \
             and `_`, starting with a letter or digit",
            clean_text(name)
        );
    }
    if version.len() > 64 || version.chars().any(|c| c.is_control()) {
        bail!(
            "plugin {origin} (`{name}`): refusing its version \"{}\": at most 64 printable characters",
            clean_text(version)
        );
    }
    if let Some(ext) = extension {
        let ok_ext = !ext.is_empty()
            && ext.len() <= 32
            && ext.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-' || b == b'_'
            })
            && !ext.starts_with('.')
            && !ext.ends_with('.')
            && !ext.contains("..")
            && ext != "tmp"
            && !ext.ends_with(".tmp");
        if !ok_ext {
            bail!(
                "plugin {origin} (`{name}`): refusing its segment file extension \"{}\": an \
                 extension is 1 to 32 of a-z, 0-9, `.`, `-` and `_`, with no `..`, no leading or \
                 trailing `.`, and not `tmp`",
                clean_text(ext)
            );
        }
    }
    Ok(())
}

/// Frames of a trap's wasm backtrace shown in its error (all of them with `--log debug`).
const TRAP_FRAMES: usize = 4;

/// A trap in a few lines: what trapped, the panic message the guest printed (Rust guests
/// print it on stderr before they abort), and the innermost frames of the wasm backtrace.
pub(super) fn trap_summary(e: &wasmtime::Error, stderr: &[String]) -> String {
    let cause = e.root_cause().to_string();
    let mut out = if cause.contains("wasi:clocks/") {
        format!(
            "it used the clock, which plugins do not have (no wall or monotonic clock, no sleep; \
             see wit/strata.wit): {}",
            clean_text(&cause)
        )
    } else if cause.contains("wasi:sockets/") {
        format!(
            "it used the network, which plugins do not have: {}",
            clean_text(&cause)
        )
    } else {
        clean_text(&cause)
    };
    // A Rust panic prints "thread '…' panicked at FILE:LINE:COL:" then the message.
    if let Some(i) = stderr.iter().rposition(|l| l.contains("panicked at")) {
        let msg: Vec<&str> = stderr[i + 1..]
            .iter()
            .map(String::as_str)
            .take_while(|l| !l.starts_with("note:") && !l.is_empty())
            .take(8)
            .collect();
        out.push_str(&format!(
            "; panic: {} ({})",
            msg.join(" "),
            stderr[i].trim()
        ));
    }
    if let Some(bt) = e.downcast_ref::<wasmtime::WasmBacktrace>() {
        let frames: Vec<String> = bt
            .frames()
            .iter()
            .take(TRAP_FRAMES)
            .map(|f| clean_text(f.func_name().unwrap_or("<unnamed>")))
            .collect();
        if !frames.is_empty() {
            let more = bt.frames().len().saturating_sub(TRAP_FRAMES);
            out.push_str(&format!("; at {}", frames.join(" <- ")));
            if more > 0 {
                out.push_str(&format!(" <- … {more} more (--log debug shows all)"));
            }
        }
    }
    out
}
