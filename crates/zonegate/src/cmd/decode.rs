//! `zonegate decode [--rtu] [--response] HEX`: decode one Modbus frame and print it as JSON.
//!
//! A thin shell over the `zonegate-modbus` codec (Modbus Application Protocol V1.1b3, TCP guide
//! V1.0b, Serial Line V1.02): it parses the hex, frames it as one Modbus/TCP ADU or one RTU frame,
//! parses the PDU strictly and prints one JSON object with the field names of docs/DESIGN.md's event
//! record. Exit status: 0 valid, 1 invalid frame or PDU, 2 bad hex.

use serde_json::{json, Map, Value};
use zonegate_modbus::{
    rtu, tcp, Direction, FrameError, PduError, Request, Response, Written, MBAP_HEADER_LEN,
};

/// Arguments of `zonegate decode` (the help text is in `after_help`: the dispatcher's doc line
/// is the subcommand's summary).
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The frame is a Modbus/TCP ADU (MBAP header + PDU) unless --rtu is given (then: address, PDU,
CRC), and a request unless --response is given. The PDU is checked against every rule of the
Modbus Application Protocol v1.1b3: quantities, byte counts, coil values, address + quantity
<= 65536, no trailing bytes.

Output, one JSON object:
  valid            true or false
  tid, unit        transaction id (TCP) and unit id / RTU address
  fc, function     function code and its name (for an exception response: the function answered)
  access, table    read | write | diagnostics | other; coils | discrete | input | holding
  address, quantity            first range (FC 23: the read range)
  write_address, write_quantity  FC 23 write range
  values           values written (requests) or read (responses)
  sub_function     FC 8 sub-function or FC 43 MEI type
  exception        exception response: its code; invalid request: the code a device would answer
  error, error_kind  why an invalid frame is invalid

Examples:
  zonegate decode '00 01 00 00 00 06 01 03 00 6B 00 03'
      FC 3 request over TCP: read 3 holding registers from address 107
  zonegate decode --response '00 01 00 00 00 03 01 83 02'
      exception response: FC 3 answered with 0x02 (illegal data address)
  zonegate decode --rtu 010300000001840A
      RTU frame: address 1, FC 3, CRC checked
  zonegate decode 000100000006010300000000
      invalid: quantity 0 (exit 1, \"exception\": 3)

Exit status: 0 valid, 1 invalid frame or PDU, 2 bad hex.")]
pub(crate) struct Args {
    /// Decode a Modbus RTU frame (address, PDU, CRC-16 low byte first) instead of a TCP ADU.
    #[arg(long)]
    rtu: bool,

    /// Decode a response (device to client) instead of a request.
    #[arg(long)]
    response: bool,

    /// The frame as hex digits; spaces (and `:` or `-`) between bytes are allowed, and the hex
    /// may be split over several arguments.
    #[arg(value_name = "HEX", required = true, num_args = 1..)]
    hex: Vec<String>,
}

/// Runs the subcommand and returns the exit status.
pub(crate) fn run(args: Args) -> u8 {
    let bytes = match parse_hex(&args.hex.join(" ")) {
        Ok(bytes) => bytes,
        Err(message) => {
            eprintln!("zonegate decode: {message}");
            return 2;
        }
    };
    let direction = if args.response {
        Direction::Response
    } else {
        Direction::Request
    };
    let (valid, object) = if args.rtu {
        decode_rtu(&bytes, direction)
    } else {
        decode_tcp(&bytes, direction)
    };
    println!("{}", Value::Object(object));
    if valid {
        0
    } else {
        1
    }
}

/// Hex digits with optional separators (whitespace, `:`, `-`) and an optional `0x` prefix.
fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let text = text.trim();
    let text = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    let mut digits = Vec::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        match c {
            c if c.is_ascii_hexdigit() => digits.push(c),
            c if c.is_whitespace() || c == ':' || c == '-' => {}
            other => {
                return Err(format!(
                    "bad hex: {other:?} at position {i} is not a hex digit or a separator"
                ))
            }
        }
    }
    if digits.is_empty() {
        return Err("bad hex: no bytes given".to_string());
    }
    if digits.len() % 2 != 0 {
        return Err(format!(
            "bad hex: {} hex digits is an odd number (each byte is two digits)",
            digits.len()
        ));
    }
    digits
        .chunks(2)
        .map(|pair| {
            let s: String = pair.iter().collect();
            u8::from_str_radix(&s, 16).map_err(|e| format!("bad hex {s:?}: {e}"))
        })
        .collect()
}

fn invalid(
    mut object: Map<String, Value>,
    error: String,
    kind: &str,
) -> (bool, Map<String, Value>) {
    object.insert("valid".into(), json!(false));
    object.insert("error".into(), json!(error));
    object.insert("error_kind".into(), json!(kind));
    (false, object)
}

fn frame_error(object: Map<String, Value>, e: FrameError) -> (bool, Map<String, Value>) {
    invalid(object, e.to_string(), e.as_str())
}

fn decode_tcp(bytes: &[u8], direction: Direction) -> (bool, Map<String, Value>) {
    let mut object = Map::new();
    object.insert("transport".into(), json!("tcp"));
    object.insert("direction".into(), json!(direction.as_str()));
    let adu = match tcp::decode_adu(bytes) {
        Ok(Some(adu)) => adu,
        Ok(None) => {
            // The MBAP header is 7 bytes; its length field (bytes 4-5) counts the unit id and
            // the PDU, so the whole ADU is 6 + length bytes.
            let message = match bytes.get(4..6) {
                Some(&[hi, lo]) => {
                    let length = u16::from_be_bytes([hi, lo]);
                    format!(
                        "incomplete ADU: {} bytes given, the MBAP length field ({length}) asks for \
                         {} bytes (6 + {length})",
                        bytes.len(),
                        6 + usize::from(length)
                    )
                }
                _ => format!(
                    "incomplete ADU: {} bytes given, the MBAP header alone is {MBAP_HEADER_LEN} bytes",
                    bytes.len()
                ),
            };
            return invalid(object, message, "incomplete");
        }
        Err(e) => return frame_error(object, e),
    };
    object.insert("tid".into(), json!(adu.header.transaction_id));
    object.insert("unit".into(), json!(adu.header.unit_id.get()));
    if bytes.len() > adu.wire_len() {
        return invalid(
            object,
            format!(
                "{} byte(s) after the end of the ADU (the MBAP length says {})",
                bytes.len() - adu.wire_len(),
                adu.header.length
            ),
            "trailing_bytes",
        );
    }
    decode_pdu(object, adu.pdu, direction)
}

fn decode_rtu(bytes: &[u8], direction: Direction) -> (bool, Map<String, Value>) {
    let mut object = Map::new();
    object.insert("transport".into(), json!("rtu"));
    object.insert("direction".into(), json!(direction.as_str()));
    let adu = match rtu::decode_frame(bytes, direction) {
        Ok(adu) => adu,
        Err(e) => return frame_error(object, e),
    };
    object.insert("unit".into(), json!(adu.address.get()));
    if adu.address.is_broadcast() {
        object.insert("broadcast".into(), json!(true));
    }
    decode_pdu(object, adu.pdu, direction)
}

fn decode_pdu(
    mut object: Map<String, Value>,
    pdu: &[u8],
    direction: Direction,
) -> (bool, Map<String, Value>) {
    if let Some(&fc) = pdu.first() {
        let plain = if direction == Direction::Response {
            fc & 0x7F
        } else {
            fc
        };
        object.insert("fc".into(), json!(plain));
        if let Some(name) = zonegate_modbus::FunctionCode::new(plain).name() {
            object.insert("function".into(), json!(name));
        }
    }
    let result = match direction {
        Direction::Request => Request::parse(pdu).map(|r| describe_request(&mut object, &r)),
        Direction::Response => Response::parse(pdu).map(|r| describe_response(&mut object, &r)),
    };
    match result {
        Ok(()) => {
            object.insert("valid".into(), json!(true));
            (true, object)
        }
        Err(e) => pdu_error(object, &e),
    }
}

fn pdu_error(mut object: Map<String, Value>, e: &PduError) -> (bool, Map<String, Value>) {
    if let Some(code) = e.exception_code() {
        object.insert("exception".into(), json!(code.to_u8()));
    }
    invalid(object, e.to_string(), e.as_str())
}

fn describe_request(object: &mut Map<String, Value>, request: &Request<'_>) {
    object.insert("access".into(), json!(request.access().as_str()));
    if let Some(sub) = request.sub_function() {
        object.insert("sub_function".into(), json!(sub));
    }
    let mut ranges = request.ranges();
    if let Some((table, range)) = ranges.next() {
        object.insert("table".into(), json!(table.as_str()));
        object.insert("address".into(), json!(range.start()));
        object.insert("quantity".into(), json!(range.count()));
    }
    if let Some((_, write)) = ranges.next() {
        object.insert("write_address".into(), json!(write.start()));
        object.insert("write_quantity".into(), json!(write.count()));
    }
    if let Some(written) = request.written() {
        object.insert("values".into(), values(written.iter()));
    }
    match *request {
        Request::MaskWriteRegister {
            and_mask, or_mask, ..
        } => {
            object.insert("and_mask".into(), json!(and_mask));
            object.insert("or_mask".into(), json!(or_mask));
        }
        Request::ReadDeviceIdentification {
            read_code,
            object_id,
        } => {
            object.insert("read_code".into(), json!(read_code.to_u8()));
            object.insert("object_id".into(), json!(object_id));
        }
        Request::ReadFileRecord(records) => {
            let list: Vec<Value> = records
                .iter()
                .map(|r| {
                    json!({"file": r.file_number, "record": r.record_number, "length": r.record_length})
                })
                .collect();
            object.insert("records".into(), Value::Array(list));
        }
        Request::WriteFileRecord(records) => {
            let list: Vec<Value> = records
                .iter()
                .map(|r| {
                    json!({"file": r.file_number, "record": r.record_number, "values": values(r.values.iter())})
                })
                .collect();
            object.insert("records".into(), Value::Array(list));
        }
        Request::Diagnostics { data, .. }
        | Request::CanOpenGeneralReference { data }
        | Request::UserDefined { data, .. } => {
            object.insert("data".into(), json!(hex(data)));
        }
        _ => {}
    }
}

fn describe_response(object: &mut Map<String, Value>, response: &Response<'_>) {
    object.insert(
        "access".into(),
        json!(response.function().access().as_str()),
    );
    if let Some(sub) = response.sub_function() {
        object.insert("sub_function".into(), json!(sub));
    }
    match *response {
        Response::Exception { code, .. } => {
            object.insert("exception".into(), json!(code.to_u8()));
            object.insert("exception_name".into(), json!(code.as_str()));
        }
        Response::ReadCoils(v) | Response::ReadDiscreteInputs(v) => {
            object.insert("byte_count".into(), json!(v.as_bytes().len()));
            object.insert("values".into(), values(Written::Coils(v).iter()));
        }
        Response::ReadHoldingRegisters(v)
        | Response::ReadInputRegisters(v)
        | Response::ReadWriteMultipleRegisters(v)
        | Response::ReadFifoQueue(v) => {
            object.insert("byte_count".into(), json!(v.as_bytes().len()));
            object.insert("values".into(), values(v.iter()));
        }
        Response::WriteSingleCoil { address, value } => {
            object.insert("table".into(), json!("coils"));
            object.insert("address".into(), json!(address));
            object.insert("quantity".into(), json!(1));
            object.insert("values".into(), json!([u16::from(value)]));
        }
        Response::WriteSingleRegister { address, value } => {
            object.insert("table".into(), json!("holding"));
            object.insert("address".into(), json!(address));
            object.insert("quantity".into(), json!(1));
            object.insert("values".into(), json!([value]));
        }
        Response::WriteMultipleCoils(range) => {
            object.insert("table".into(), json!("coils"));
            object.insert("address".into(), json!(range.start()));
            object.insert("quantity".into(), json!(range.count()));
        }
        Response::WriteMultipleRegisters(range) => {
            object.insert("table".into(), json!("holding"));
            object.insert("address".into(), json!(range.start()));
            object.insert("quantity".into(), json!(range.count()));
        }
        Response::MaskWriteRegister {
            address,
            and_mask,
            or_mask,
        } => {
            object.insert("table".into(), json!("holding"));
            object.insert("address".into(), json!(address));
            object.insert("quantity".into(), json!(1));
            object.insert("and_mask".into(), json!(and_mask));
            object.insert("or_mask".into(), json!(or_mask));
        }
        Response::ReadExceptionStatus { status } => {
            object.insert("status".into(), json!(status));
        }
        Response::GetCommEventCounter {
            status,
            event_count,
        } => {
            object.insert("status".into(), json!(status));
            object.insert("event_count".into(), json!(event_count));
        }
        Response::GetCommEventLog {
            status,
            event_count,
            message_count,
            events,
        } => {
            object.insert("status".into(), json!(status));
            object.insert("event_count".into(), json!(event_count));
            object.insert("message_count".into(), json!(message_count));
            object.insert("events".into(), json!(hex(events)));
        }
        Response::ReadDeviceIdentification(id) => {
            object.insert("read_code".into(), json!(id.read_code.to_u8()));
            object.insert("conformity_level".into(), json!(id.conformity_level));
            object.insert("more_follows".into(), json!(id.more_follows));
            object.insert("next_object_id".into(), json!(id.next_object_id));
            let list: Vec<Value> = id
                .objects
                .iter()
                .map(|o| json!({"id": o.id, "value": String::from_utf8_lossy(o.value)}))
                .collect();
            object.insert("objects".into(), Value::Array(list));
        }
        Response::ReadFileRecord(records) => {
            let list: Vec<Value> = records.iter().map(|r| values(r.iter())).collect();
            object.insert("records".into(), Value::Array(list));
        }
        Response::WriteFileRecord(records) => {
            let list: Vec<Value> = records
                .iter()
                .map(|r| {
                    json!({"file": r.file_number, "record": r.record_number, "values": values(r.values.iter())})
                })
                .collect();
            object.insert("records".into(), Value::Array(list));
        }
        Response::Diagnostics { data, .. }
        | Response::ReportServerId { data }
        | Response::CanOpenGeneralReference { data }
        | Response::UserDefined { data, .. } => {
            object.insert("data".into(), json!(hex(data)));
        }
        _ => {}
    }
}

fn values(iter: impl Iterator<Item = u16>) -> Value {
    Value::Array(iter.map(Value::from).collect())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_accepts_separators_and_refuses_junk() {
        assert_eq!(parse_hex("01 0a:FF-10").unwrap(), vec![1, 10, 255, 16]);
        assert_eq!(parse_hex("0x0102").unwrap(), vec![1, 2]);
        assert!(parse_hex("012").is_err());
        assert!(parse_hex("zz").is_err());
        assert!(parse_hex("  ").is_err());
    }
}
