//! Parsers for the small value languages of the model file: durations (`800ms`, `2s`, `5m`),
//! sizes (`64MiB`), rates (`2/s`, `10/min`), address ranges (`0-199`, `0x100`), security levels
//! (`SL 2`), Purdue levels (`1-2`, `3.5`), upstream URLs and function selectors.
//!
//! Each returns `Err(message)` naming the bad input; the loader adds file, line and key path.

use std::path::PathBuf;
use std::time::Duration;

use crate::model::{
    function_code, FileRange, FunctionClass, FunctionSelector, Parity, PurdueLevel, Rate, U16Range,
    Upstream, Word,
};

/// Parses an unsigned integer: decimal, or hex with `0x`; `_` separators allowed.
pub(crate) fn parse_uint(s: &str) -> Result<u64, String> {
    let t = s.trim().replace('_', "");
    let r = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(h, 16)
    } else {
        t.parse::<u64>()
    };
    r.map_err(|_| format!("`{s}` is not a non-negative integer"))
}

/// `800ms`, `2s`, `5m`/`5min`, `1h`; a unit is required.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{s}` has no unit; write e.g. 800ms, 2s, 5m"))?;
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!("`{s}` is not a duration; write e.g. 800ms, 2s, 5m"));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}`: number too large"))?;
    let ms_per = match unit.trim() {
        "ms" => 1,
        "s" | "sec" => 1000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        u => {
            return Err(format!(
                "`{s}`: unknown unit `{u}` (use ms, s, m or min, h)"
            ))
        }
    };
    let ms = n
        .checked_mul(ms_per)
        .ok_or_else(|| format!("`{s}` is too long"))?;
    Ok(Duration::from_millis(ms))
}

/// Bytes: `65536`, `64KiB`, `64MiB`, `1GiB`, `10MB` (powers of 1000), `512B`.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!("`{s}` is not a size; write e.g. 64MiB"));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}`: number too large"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        u => {
            return Err(format!(
                "`{s}`: unknown unit `{u}` (use B, KiB, MiB, GiB, KB, MB, GB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// `N/s`, `N/sec`, `N/min`, `N/m`, `N/h`; N from 1.
pub(crate) fn parse_rate(s: &str) -> Result<Rate, String> {
    let (n, unit) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}` is not a rate; write e.g. 2/s or 30/min"))?;
    let count: u32 = n
        .trim()
        .parse()
        .map_err(|_| format!("`{s}`: `{}` is not a count", n.trim()))?;
    if count == 0 {
        return Err(format!(
            "`{s}`: a rate of 0 allows nothing; remove the rule instead"
        ));
    }
    let per = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        u => return Err(format!("`{s}`: unknown period `{u}` (use s, min or h)")),
    };
    Ok(Rate { count, per })
}

fn parse_u16(s: &str, whole: &str, what: &str) -> Result<u16, String> {
    let v = parse_uint(s).map_err(|_| format!("\"{whole}\": `{}` is not a number", s.trim()))?;
    u16::try_from(v).map_err(|_| format!("\"{whole}\": {what} {v} is above 65535"))
}

/// An inclusive range `a-b` or a single value `a` (decimal or `0x` hex), each 0-65535.
pub(crate) fn parse_u16_range(s: &str, what: &str) -> Result<U16Range, String> {
    let t = s.trim();
    let (start, end) = match t.split_once('-') {
        Some((a, b)) => (parse_u16(a, t, what)?, parse_u16(b, t, what)?),
        None => {
            let v = parse_u16(t, t, what)?;
            (v, v)
        }
    };
    if end < start {
        return Err(format!(
            "\"{t}\": range ends ({end}) before it starts ({start})"
        ));
    }
    Ok(U16Range { start, end })
}

/// A `file:` entry: `4`, `4-6` (every record) or `4:0-99`, `4-6:10-19` (those records).
pub(crate) fn parse_file_range(s: &str) -> Result<FileRange, String> {
    let t = s.trim();
    let (files, records) = match t.split_once(':') {
        Some((f, r)) => (f, Some(r)),
        None => (t, None),
    };
    let files = parse_u16_range(files, "file number")?;
    if files.start == 0 {
        return Err(format!(
            "\"{t}\": file number 0 does not exist (file numbers are 1-65535)"
        ));
    }
    let records = match records {
        Some(r) => parse_u16_range(r, "record number")?,
        None => U16Range {
            start: 0,
            end: FileRange::MAX_RECORD,
        },
    };
    if records.end > FileRange::MAX_RECORD {
        return Err(format!(
            "\"{t}\": record {} is above {} (the highest record number)",
            records.end,
            FileRange::MAX_RECORD
        ));
    }
    Ok(FileRange { files, records })
}

/// A security level 0-4: `SL 2`, `SL2`, `SL-2`, `2`.
pub(crate) fn parse_security_level(s: &str) -> Result<u8, String> {
    let t = s.trim();
    let digits = t
        .strip_prefix("SL")
        .or_else(|| t.strip_prefix("sl"))
        .map(|r| r.trim_start_matches(['-', ' ', '_']))
        .unwrap_or(t);
    match digits.trim().parse::<u8>() {
        Ok(l) if l <= 4 => Ok(l),
        Ok(l) => Err(format!("`{s}`: security level {l} is above 4")),
        Err(_) => Err(format!(
            "`{s}` is not a security level; write e.g. \"SL 2\" or 2"
        )),
    }
}

fn parse_level_tenths(s: &str, whole: &str) -> Result<u8, String> {
    let t = s.trim();
    let (int, frac) = match t.split_once('.') {
        Some((i, f)) => (i, f),
        None => (t, "0"),
    };
    let i: u8 = int
        .parse()
        .map_err(|_| format!("`{whole}` is not a Purdue level; write e.g. 2, \"1-2\" or 3.5"))?;
    let f: u8 = match frac {
        "0" | "" => 0,
        "5" => 5,
        _ => {
            return Err(format!(
                "`{whole}`: only whole levels and 3.5 are Purdue levels"
            ))
        }
    };
    let tenths = u16::from(i) * 10 + u16::from(f);
    if tenths > 50 {
        return Err(format!("`{whole}`: Purdue levels go from 0 to 5"));
    }
    if f == 5 && i != 3 {
        return Err(format!("`{whole}`: the only half level is 3.5 (the DMZ)"));
    }
    u8::try_from(tenths).map_err(|_| format!("`{whole}`: Purdue levels go from 0 to 5"))
}

/// `2`, `3.5`, `1-2`, `Level 2`, `L2`.
pub(crate) fn parse_purdue(s: &str) -> Result<PurdueLevel, String> {
    let t = s.trim();
    let body = ["Level", "level", "L"]
        .iter()
        .find_map(|p| t.strip_prefix(p))
        .unwrap_or(t)
        .trim();
    let (lo, hi) = match body.split_once('-') {
        Some((a, b)) => (parse_level_tenths(a, s)?, parse_level_tenths(b, s)?),
        None => {
            let v = parse_level_tenths(body, s)?;
            (v, v)
        }
    };
    PurdueLevel::from_tenths(lo, hi).ok_or_else(|| format!("`{s}`: span ends before it starts"))
}

fn split_host_port(s: &str, default_port: u16, url: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("`{url}`: missing `]` after the IPv6 address"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(format!("`{url}`: junk `{after}` after the address")),
        };
        (h.to_owned(), port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h.to_owned(), Some(p)),
            Some(_) => {
                return Err(format!(
                    "`{url}`: put an IPv6 address in brackets, e.g. tcp://[fd00::1]:502"
                ))
            }
            None => (s.to_owned(), None),
        }
    };
    if host.is_empty() {
        return Err(format!("`{url}`: missing host"));
    }
    let port = match port {
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("`{url}`: `{p}` is not a TCP port")),
            Ok(v) => v,
        },
        None => default_port,
    };
    Ok((host, port))
}

fn query_pairs<'a>(q: &'a str, url: &str) -> Result<Vec<(&'a str, &'a str)>, String> {
    let mut out = Vec::new();
    for part in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("`{url}`: query part `{part}` has no `=`"))?;
        if out.iter().any(|(ok, _)| *ok == k) {
            return Err(format!("`{url}`: `{k}` given twice"));
        }
        out.push((k, v));
    }
    Ok(out)
}

/// `tcp://host:port`, `tls://host:port?ca=..&cert=..&key=..&server_name=..`,
/// `rtu:///dev/ttyUSB0?baud=19200&parity=even&data_bits=8&stop_bits=1`.
pub(crate) fn parse_upstream(s: &str) -> Result<Upstream, String> {
    let url = s.trim();
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        format!("`{url}`: write tcp://host:port, tls://host:port or rtu:///dev/...")
    })?;
    let (body, query) = match rest.split_once('?') {
        Some((b, q)) => (b, q),
        None => (rest, ""),
    };
    let pairs = query_pairs(query, url)?;
    match scheme {
        "tcp" => {
            if let Some((k, _)) = pairs.first() {
                return Err(format!("`{url}`: tcp:// takes no option `{k}`"));
            }
            let (host, port) = split_host_port(body, 502, url)?;
            Ok(Upstream::Tcp { host, port })
        }
        "tls" => {
            let (host, port) = split_host_port(body, 802, url)?;
            let (mut ca, mut cert, mut key, mut server_name) = (None, None, None, None);
            for (k, v) in pairs {
                match k {
                    "ca" => ca = Some(PathBuf::from(v)),
                    "cert" => cert = Some(PathBuf::from(v)),
                    "key" => key = Some(PathBuf::from(v)),
                    "server_name" => server_name = Some(v.to_owned()),
                    _ => {
                        return Err(format!(
                        "`{url}`: unknown option `{k}` (tls:// takes ca, cert, key, server_name)"
                    ))
                    }
                }
            }
            if cert.is_some() != key.is_some() {
                return Err(format!("`{url}`: cert and key go together"));
            }
            Ok(Upstream::Tls {
                host,
                port,
                ca,
                cert,
                key,
                server_name,
            })
        }
        "rtu" => {
            if body.is_empty() {
                return Err(format!(
                    "`{url}`: missing serial device, e.g. rtu:///dev/ttyUSB0"
                ));
            }
            let (mut baud, mut parity, mut data_bits, mut stop_bits) =
                (19_200u32, Parity::Even, 8u8, 1u8);
            for (k, v) in pairs {
                match k {
                    "baud" => {
                        baud = match v.parse::<u32>() {
                            Ok(b) if (300..=4_000_000).contains(&b) => b,
                            _ => return Err(format!("`{url}`: baud `{v}` is not a baud rate")),
                        }
                    }
                    "parity" => {
                        parity = match v {
                            "none" | "N" => Parity::None,
                            "even" | "E" => Parity::Even,
                            "odd" | "O" => Parity::Odd,
                            _ => {
                                return Err(format!(
                                    "`{url}`: parity `{v}` (use none, even or odd)"
                                ))
                            }
                        }
                    }
                    "data_bits" => {
                        data_bits = match v {
                            "7" => 7,
                            "8" => 8,
                            _ => return Err(format!("`{url}`: data_bits `{v}` (use 7 or 8)")),
                        }
                    }
                    "stop_bits" => {
                        stop_bits = match v {
                            "1" => 1,
                            "2" => 2,
                            _ => return Err(format!("`{url}`: stop_bits `{v}` (use 1 or 2)")),
                        }
                    }
                    _ => {
                        return Err(format!(
                            "`{url}`: unknown option `{k}` (rtu:// takes baud, parity, data_bits, stop_bits)"
                        ))
                    }
                }
            }
            Ok(Upstream::Rtu {
                path: PathBuf::from(body),
                baud,
                parity,
                data_bits,
                stop_bits,
            })
        }
        "rtu+tcp" => {
            if let Some((k, _)) = pairs.first() {
                return Err(format!(
                    "`{url}`: rtu+tcp:// takes no option `{k}` (bus options go in `serial:`)"
                ));
            }
            let (host, port) = split_host_port(body, 502, url)?;
            Ok(Upstream::RtuTcp { host, port })
        }
        _ => Err(format!(
            "`{url}`: unknown scheme `{scheme}` (use tcp, tls, rtu or rtu+tcp)"
        )),
    }
}

/// A function code from a number or a name (not a class).
fn parse_function(s: &str, whole: &str) -> Result<u8, String> {
    let t = s.trim();
    if t.starts_with(|c: char| c.is_ascii_digit()) {
        let v = parse_uint(t).map_err(|_| format!("`{whole}`: `{t}` is not a function code"))?;
        return match u8::try_from(v) {
            Ok(c) if (1..=127).contains(&c) => Ok(c),
            _ => Err(format!("`{whole}`: function code {v} is outside 1-127")),
        };
    }
    function_code(t).ok_or_else(|| format!("`{whole}`: unknown function `{t}`"))
}

/// Checks that `code` has sub-functions and parses a list such as `4` or `0,10-18`.
pub(crate) fn parse_sub_functions(
    code: u8,
    list: &[&str],
    whole: &str,
) -> Result<Vec<U16Range>, String> {
    if code != 8 && code != 43 {
        return Err(format!(
            "`{whole}`: only diagnostics (8) and encapsulated_interface (43) have sub-functions"
        ));
    }
    let what = if code == 8 {
        "sub-function"
    } else {
        "MEI type"
    };
    let mut out = Vec::new();
    for item in list {
        let r = parse_u16_range(item, what)?;
        if code == 43 && r.end > 255 {
            return Err(format!("`{whole}`: MEI type {} is above 255", r.end));
        }
        out.push(r);
    }
    if out.is_empty() {
        return Err(format!("`{whole}`: empty sub-function list"));
    }
    Ok(out)
}

/// One scalar entry of `functions:` (see [`FunctionSelector`] for the syntax).
pub(crate) fn parse_function_selector(s: &str) -> Result<FunctionSelector, String> {
    let t = s.trim();
    if let Some(class) = FunctionClass::ALL_WORDS.iter().find(|c| c.word() == t) {
        return Ok(FunctionSelector::Class(*class));
    }
    if t == "read_device_identification" {
        return Ok(FunctionSelector::Function {
            code: 43,
            sub_functions: Some(vec![U16Range { start: 14, end: 14 }]),
        });
    }
    match t.split_once(':') {
        Some((f, subs)) => {
            let code = parse_function(f, t)?;
            let list: Vec<&str> = subs.split(',').map(str::trim).collect();
            let sub_functions = parse_sub_functions(code, &list, t)?;
            Ok(FunctionSelector::Function {
                code,
                sub_functions: Some(sub_functions),
            })
        }
        None => Ok(FunctionSelector::Function {
            code: parse_function(t, t)?,
            sub_functions: None,
        }),
    }
}

/// A function for the mapping form `{function: X, sub_functions: [...]}`: here `diagnostics`
/// names FC 8, not the class.
pub(crate) fn parse_single_function(s: &str) -> Result<u8, String> {
    parse_function(s, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("800ms").unwrap(), Duration::from_millis(800));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("5min").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("30").unwrap_err().contains("no unit"));
        assert!(parse_duration("2 fortnights").is_err());
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("64 furlongs").is_err());
    }

    #[test]
    fn rates() {
        let r = parse_rate("2/s").unwrap();
        assert_eq!((r.count, r.per), (2, Duration::from_secs(1)));
        assert_eq!(parse_rate("30/min").unwrap().per, Duration::from_secs(60));
        assert_eq!(parse_rate("30/min").unwrap().to_string(), "30/min");
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("5").is_err());
        assert!(parse_rate("5/fortnight").is_err());
    }

    #[test]
    fn ranges() {
        assert_eq!(
            parse_u16_range("0-199", "address").unwrap(),
            U16Range { start: 0, end: 199 }
        );
        assert_eq!(
            parse_u16_range(" 100 ", "address").unwrap(),
            U16Range {
                start: 100,
                end: 100
            }
        );
        assert_eq!(
            parse_u16_range("0x10-0x1F", "address").unwrap(),
            U16Range { start: 16, end: 31 }
        );
        assert_eq!(parse_u16_range("0-65535", "address").unwrap().end, 65535);
        let e = parse_u16_range("0-70000", "address").unwrap_err();
        assert_eq!(e, "\"0-70000\": address 70000 is above 65535");
        assert!(parse_u16_range("200-100", "address")
            .unwrap_err()
            .contains("before it starts"));
        assert!(parse_u16_range("a-b", "address").is_err());
    }

    #[test]
    fn levels() {
        assert_eq!(parse_security_level("SL 2").unwrap(), 2);
        assert_eq!(parse_security_level("SL-3").unwrap(), 3);
        assert_eq!(parse_security_level("1").unwrap(), 1);
        assert!(parse_security_level("SL 5").is_err());
        assert!(parse_security_level("high").is_err());
        assert_eq!(parse_purdue("1-2").unwrap().to_string(), "1-2");
        assert!(parse_purdue("3.5").unwrap().is_dmz());
        assert_eq!(parse_purdue("Level 3").unwrap().low_tenths(), 30);
        assert!(parse_purdue("2.5").is_err());
        assert!(parse_purdue("7").is_err());
        assert!(parse_purdue("2-1").is_err());
    }

    #[test]
    fn upstreams() {
        assert_eq!(
            parse_upstream("tcp://10.20.1.10:502").unwrap(),
            Upstream::Tcp {
                host: "10.20.1.10".into(),
                port: 502
            }
        );
        assert_eq!(
            parse_upstream("tcp://[fd00::1]").unwrap(),
            Upstream::Tcp {
                host: "fd00::1".into(),
                port: 502
            }
        );
        let tls = parse_upstream("tls://plc.local?ca=ca.pem&cert=c.pem&key=k.pem").unwrap();
        assert!(matches!(tls, Upstream::Tls { port: 802, .. }));
        let rtu = parse_upstream("rtu:///dev/ttyUSB0?baud=9600&parity=none&stop_bits=2").unwrap();
        assert_eq!(
            rtu,
            Upstream::Rtu {
                path: "/dev/ttyUSB0".into(),
                baud: 9600,
                parity: Parity::None,
                data_bits: 8,
                stop_bits: 2
            }
        );
        assert_eq!(
            rtu.to_string(),
            "rtu:///dev/ttyUSB0?baud=9600&parity=none&data_bits=8&stop_bits=2"
        );
        assert!(parse_upstream("udp://x:1").is_err());
        assert!(parse_upstream("tcp://fd00::1:502").is_err());
        assert!(parse_upstream("tcp://x:0").is_err());
        assert!(parse_upstream("tcp://x:502?foo=1").is_err());
        assert!(parse_upstream("rtu:///dev/x?parity=mark").is_err());
        assert!(parse_upstream("tls://x?cert=c.pem").is_err());
        assert!(parse_upstream("10.0.0.1:502").is_err());
    }

    #[test]
    fn function_selectors() {
        use FunctionSelector as F;
        assert_eq!(
            parse_function_selector("read").unwrap(),
            F::Class(FunctionClass::Read)
        );
        assert_eq!(
            parse_function_selector("diagnostics").unwrap(),
            F::Class(FunctionClass::Diagnostics)
        );
        assert_eq!(
            parse_function_selector("write_single_register").unwrap(),
            F::Function {
                code: 6,
                sub_functions: None
            }
        );
        assert_eq!(
            parse_function_selector("16").unwrap(),
            F::Function {
                code: 16,
                sub_functions: None
            }
        );
        let d = parse_function_selector("diagnostics:0,10-18").unwrap();
        assert!(d.selects(8, Some(0)) && d.selects(8, Some(12)) && !d.selects(8, Some(4)));
        let m = parse_function_selector("read_device_identification").unwrap();
        assert!(m.selects(43, Some(14)) && !m.selects(43, Some(13)));
        assert!(parse_function_selector("43:0x0E")
            .unwrap()
            .selects(43, Some(14)));
        assert!(parse_function_selector("3:1").is_err());
        assert!(parse_function_selector("0").is_err());
        assert!(parse_function_selector("128").is_err());
        assert!(parse_function_selector("read_everything").is_err());
        assert!(parse_function_selector("43:300").is_err());
        assert!(parse_function_selector("100").is_ok());
    }
}
