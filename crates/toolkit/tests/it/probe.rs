//! `zonegate probe` against an in-test fake gateway on loopback (port chosen at run time): the
//! planned tests, PASS/FAIL, and the write-back of an unexpectedly permitted write.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use zonegate_modbus::{
    tcp, ExceptionCode, FunctionCode, RegisterValues, Request, Response, UnitId,
};
use zonegate_toolkit::probe::{self, Op, ProbeOptions};

use super::util::{site, BASE};

/// A fake gateway + device: holding registers 0..100 of unit 1 hold `100 + address`; reads of
/// unit 1 in 0..=99 pass; `permit_writes` lets FC 6 through (a broken gateway), else every other
/// request gets the exception a zonegate would send.
fn fake(permit_writes: bool) -> (std::net::SocketAddr, Arc<Mutex<Vec<u16>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let regs = Arc::new(Mutex::new((0..100u16).map(|a| 100 + a).collect::<Vec<_>>()));
    let r2 = regs.clone();
    thread::spawn(move || {
        // Bounded: at most 20 connections, each bounded by its read timeout.
        for conn in listener.incoming().take(20) {
            let Ok(mut s) = conn else { continue };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let regs = r2.clone();
            thread::spawn(move || serve(&mut s, &regs, permit_writes));
        }
    });
    (addr, regs)
}

fn serve(s: &mut TcpStream, regs: &Mutex<Vec<u16>>, permit_writes: bool) {
    let mut buf = [0u8; 600];
    let mut have = 0;
    for _ in 0..100 {
        let Ok(n) = s.read(&mut buf[have..]) else {
            return;
        };
        if n == 0 {
            return;
        }
        have += n;
        while let Ok(Some(adu)) = tcp::decode_adu(&buf[..have]) {
            let len = adu.wire_len();
            let unit = adu.header.unit_id.get();
            let tid = adu.header.transaction_id;
            let mut pdu = [0u8; 253];
            let n = match Request::parse(adu.pdu) {
                Ok(req) => answer(&req, unit, regs, permit_writes, &mut pdu),
                Err(_) => exception(adu.pdu[0], ExceptionCode::IllegalDataValue, &mut pdu),
            };
            let mut out = [0u8; 260];
            let m = tcp::encode_adu(tid, UnitId::new(unit), &pdu[..n], &mut out).unwrap();
            if s.write_all(&out[..m]).is_err() {
                return;
            }
            buf.copy_within(len..have, 0);
            have -= len;
        }
    }
}

fn exception(fc: u8, code: ExceptionCode, out: &mut [u8]) -> usize {
    Response::Exception {
        function: FunctionCode::new(fc & 0x7f),
        code,
    }
    .encode(out)
    .unwrap()
}

fn answer(
    req: &Request<'_>,
    unit: u8,
    regs: &Mutex<Vec<u16>>,
    permit_writes: bool,
    out: &mut [u8],
) -> usize {
    let fc = req.function().get();
    if unit != 1 {
        return exception(fc, ExceptionCode::IllegalFunction, out);
    }
    match *req {
        Request::ReadHoldingRegisters(r) if r.last() < 100 => {
            let regs = regs.lock().unwrap();
            let mut bytes = Vec::new();
            for a in r.start()..=r.last() {
                bytes.extend_from_slice(&regs[usize::from(a)].to_be_bytes());
            }
            Response::ReadHoldingRegisters(RegisterValues::new(&bytes).unwrap())
                .encode(out)
                .unwrap()
        }
        Request::ReadHoldingRegisters(_) => exception(fc, ExceptionCode::IllegalDataAddress, out),
        Request::WriteSingleRegister { address, value } if permit_writes && address < 100 => {
            regs.lock().unwrap()[usize::from(address)] = value.wrapping_add(1); // a nasty device
            Response::WriteSingleRegister { address, value }
                .encode(out)
                .unwrap()
        }
        _ => exception(fc, ExceptionCode::IllegalFunction, out),
    }
}

fn model(port: u16) -> String {
    BASE.replacen(
        "listen: 127.0.0.1:5020",
        &format!("listen: 127.0.0.1:{port}"),
        1,
    )
    .replacen("from: [HMI]", "from: [HMI, 127.0.0.1]", 1)
    .replacen(
        "    networks: [10.2.0.0/24]\n",
        "    networks: [10.2.0.0/24, 127.0.0.0/8]\n",
        1,
    )
}

fn opts() -> ProbeOptions {
    ProbeOptions {
        conduit: "C1".into(),
        from: Some("127.0.0.1".parse().unwrap()),
        connect: None,
        timeout: Duration::from_secs(2),
        tls: None,
    }
}

#[test]
fn plan_for_a_read_only_source() {
    let s = site(&model(5020));
    let c = s.conduit("C1").unwrap();
    let tests = probe::plan(&s, c, "127.0.0.1".parse().unwrap(), None);
    let names: Vec<&str> = tests.iter().map(|t| t.name).collect();
    assert_eq!(
        names,
        [
            "allowed-read",
            "write-denied",
            "out-of-range-read",
            "unknown-unit",
            "function-denied"
        ]
    );
    assert_eq!(tests[0].op, Op::ReadHolding(0));
    assert!(tests[0].expect_allow && tests[1..].iter().all(|t| !t.expect_allow));
    assert_eq!(tests[1].op, Op::WriteSameValue(0));
    assert_eq!(tests[2].op, Op::ReadHolding(100));
    assert_ne!(tests[3].unit, 1);
    // A source no rule covers: everything must be denied.
    let other = probe::plan(&s, c, "10.2.0.99".parse().unwrap(), None);
    assert_eq!(other[0].name, "unlisted-source-read");
    assert!(other.iter().all(|t| !t.expect_allow));
    // The EWS may write 10-19 but not read: the write test is the no-op mask write elsewhere.
    let ews = probe::plan(&s, c, "10.2.0.20".parse().unwrap(), None);
    assert!(
        ews.iter().any(|t| matches!(t.op, Op::MaskWriteNoop(_))),
        "{ews:#?}"
    );
}

#[test]
fn probe_passes_against_a_correct_gateway() {
    let (addr, regs) = fake(false);
    let s = site(&model(addr.port()));
    let before = regs.lock().unwrap().clone();
    let run = probe::run(&s, &opts()).unwrap();
    assert_eq!(run.failed, 0, "{}", probe::render_text(&run));
    assert_eq!(run.passed, 5);
    assert_eq!(run.source, "127.0.0.1");
    assert!(run.tests[0]
        .outcome
        .starts_with("normal response (value 100)"));
    assert!(run.tests[2].outcome.contains("0x02"));
    assert_eq!(*regs.lock().unwrap(), before, "the probe changed a value");
    let text = probe::render_text(&run);
    assert!(text.contains("PASS allowed-read") && text.contains("5 passed, 0 failed"));
}

#[test]
fn permitted_write_fails_and_the_old_value_is_restored() {
    let (addr, regs) = fake(true);
    let s = site(&model(addr.port()));
    let run = probe::run(&s, &opts()).unwrap();
    let w = run.tests.iter().find(|t| t.name == "write-denied").unwrap();
    assert!(!w.pass, "{w:#?}");
    assert!(
        w.outcome.contains("wrote the old value 100 back"),
        "{}",
        w.outcome
    );
    assert_eq!(run.failed, 1);
    // The nasty device stored value+1 on each write; the write-back leaves value+1 of the old
    // value, which the probe reports. What matters: the probe wrote the old value back.
    assert_eq!(regs.lock().unwrap()[0], 101);
}

#[test]
fn unreachable_gateway_is_an_error() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let s = site(&model(port));
    let e = probe::run(&s, &opts()).unwrap_err();
    assert!(e.contains("cannot connect"), "{e}");
    let mut o = opts();
    o.conduit = "C3".into();
    assert!(probe::run(&s, &o).unwrap_err().contains("no gateway"));
}
