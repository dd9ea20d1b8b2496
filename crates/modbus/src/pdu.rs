//! Borrowed views of the data carried in PDUs, and the quantity limits of V1.1b3.
//!
//! Spec: Modbus Application Protocol V1.1b3 §4.1 (PDU size 253), §6.1-§6.21 (per-function
//! layouts and quantity limits). The request and response enums ([`Request`], [`Response`],
//! re-exported here) live in their own modules; this module holds what they share: the value
//! views ([`CoilValues`], [`RegisterValues`], [`Written`]), the file-record and
//! device-identification views, the [`Ranges`] iterator, and the limits as named constants.

use core::fmt;

use crate::error::{PduError, PduErrorKind};
pub use crate::request::{diagnostics, Inspection, Request};
pub use crate::response::Response;
use crate::types::{AddressRange, Direction, Table};

/// Largest PDU: 256-byte serial ADU minus address and CRC (V1.1b3 §4.1).
pub const MAX_PDU_LEN: usize = 253;

/// The frame of every full PDU parse, requests and responses alike: split off the function
/// code, refuse an empty or over-long PDU, and tag an error of `parse_body` with the function
/// and the direction.
pub(crate) fn parse_with<'a, T>(
    pdu: &'a [u8],
    direction: Direction,
    parse_body: impl FnOnce(u8, &'a [u8]) -> Result<T, PduErrorKind>,
) -> Result<T, PduError> {
    let Some((&fc, body)) = pdu.split_first() else {
        return Err(PduError::new(0, direction, PduErrorKind::Empty));
    };
    if pdu.len() > MAX_PDU_LEN {
        return Err(PduError::new(
            fc,
            direction,
            PduErrorKind::TooLong { length: pdu.len() },
        ));
    }
    parse_body(fc, body).map_err(|kind| PduError::new(fc, direction, kind))
}
/// FC 1/2: quantity of bits read, 1..=2000 (0x7D0).
pub const MAX_READ_BITS: u16 = 2000;
/// FC 3/4: quantity of registers read, 1..=125 (0x7D).
pub const MAX_READ_REGISTERS: u16 = 125;
/// FC 15: quantity of coils written, 1..=1968 (0x7B0).
pub const MAX_WRITE_COILS: u16 = 1968;
/// FC 16: quantity of registers written, 1..=123 (0x7B).
pub const MAX_WRITE_REGISTERS: u16 = 123;
/// FC 23: quantity of registers read, 1..=125.
pub const MAX_RW_READ_REGISTERS: u16 = 125;
/// FC 23: quantity of registers written, 1..=121 (0x79).
pub const MAX_RW_WRITE_REGISTERS: u16 = 121;
/// FC 24: FIFO count, 0..=31.
pub const MAX_FIFO_COUNT: u16 = 31;
/// FC 5: the two allowed coil values.
pub const COIL_ON: u16 = 0xFF00;
/// FC 5: the two allowed coil values.
pub const COIL_OFF: u16 = 0x0000;
/// FC 20/21: the only reference type.
pub const FILE_REFERENCE_TYPE: u8 = 6;
/// FC 20/21: the highest record number.
pub const MAX_FILE_RECORD_NUMBER: u16 = 0x270F;
/// FC 43: MEI type CANopen General Reference.
pub const MEI_CANOPEN: u8 = 0x0D;
/// FC 43: MEI type Read Device Identification.
pub const MEI_READ_DEVICE_ID: u8 = 0x0E;

/// Number of bytes holding `bits` packed bits: ⌈bits / 8⌉.
pub const fn bit_bytes(bits: u16) -> usize {
    (bits as usize).div_ceil(8)
}

/// Packed bit values (coils or discrete inputs), least significant bit of the first byte first
/// (V1.1b3 §6.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CoilValues<'a> {
    bytes: &'a [u8],
    count: u16,
}

impl<'a> CoilValues<'a> {
    /// `count` bits packed in `bytes`; `None` unless `bytes.len() == ⌈count / 8⌉`.
    pub const fn new(bytes: &'a [u8], count: u16) -> Option<Self> {
        if bytes.len() == bit_bytes(count) {
            Some(Self { bytes, count })
        } else {
            None
        }
    }

    /// One coil, as FC 5 writes it.
    pub const fn single(value: bool) -> Self {
        const ON: &[u8] = &[1];
        const OFF: &[u8] = &[0];
        Self {
            bytes: if value { ON } else { OFF },
            count: 1,
        }
    }

    /// Number of bits.
    pub const fn len(&self) -> usize {
        self.count as usize
    }

    /// True when there are no bits (never for a parsed PDU).
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The packed bytes as on the wire (padding bits included).
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Bit `index`, `None` past the end.
    pub fn get(&self, index: usize) -> Option<bool> {
        if index >= self.len() {
            return None;
        }
        self.bytes.get(index / 8).map(|b| b >> (index % 8) & 1 == 1)
    }

    /// The bits in address order.
    pub fn iter(&self) -> CoilIter<'a> {
        CoilIter {
            values: *self,
            index: 0,
        }
    }

    /// True when the padding bits above `count` in the last byte are all zero.
    pub fn padding_is_zero(&self) -> bool {
        let used = self.count % 8;
        match (used, self.bytes.last()) {
            (0, _) | (_, None) => true,
            (used, Some(last)) => last >> used == 0,
        }
    }
}

impl fmt::Debug for CoilValues<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter().map(u8::from)).finish()
    }
}

impl<'a> IntoIterator for CoilValues<'a> {
    type Item = bool;
    type IntoIter = CoilIter<'a>;
    fn into_iter(self) -> CoilIter<'a> {
        self.iter()
    }
}

/// Iterator over [`CoilValues`].
#[derive(Debug, Clone)]
pub struct CoilIter<'a> {
    values: CoilValues<'a>,
    index: usize,
}

impl Iterator for CoilIter<'_> {
    type Item = bool;
    #[inline]
    fn next(&mut self) -> Option<bool> {
        if self.index >= self.values.len() {
            return None;
        }
        let byte = *self.values.bytes.get(self.index / 8)?;
        let bit = byte >> (self.index % 8) & 1 == 1;
        self.index += 1;
        Some(bit)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.values.len().saturating_sub(self.index);
        (n, Some(n))
    }
}

impl ExactSizeIterator for CoilIter<'_> {}

#[derive(Clone, Copy)]
enum RegisterRepr<'a> {
    Wire(&'a [u8]),
    One([u8; 2]),
}

/// Big-endian 16-bit register values, borrowed from the PDU (or one value held inline, for
/// FC 6).
#[derive(Clone, Copy)]
pub struct RegisterValues<'a> {
    repr: RegisterRepr<'a>,
}

impl<'a> RegisterValues<'a> {
    /// Registers packed big-endian in `bytes`; `None` for an odd length.
    pub const fn new(bytes: &'a [u8]) -> Option<Self> {
        if bytes.len() % 2 == 0 {
            Some(Self {
                repr: RegisterRepr::Wire(bytes),
            })
        } else {
            None
        }
    }

    /// One register, as FC 6 writes it.
    pub const fn single(value: u16) -> Self {
        Self {
            repr: RegisterRepr::One(value.to_be_bytes()),
        }
    }

    /// The big-endian bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.repr {
            RegisterRepr::Wire(b) => b,
            RegisterRepr::One(b) => b,
        }
    }

    /// Number of registers.
    pub fn len(&self) -> usize {
        self.as_bytes().len() / 2
    }

    /// True when there are no registers.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Register `index`, `None` past the end.
    pub fn get(&self, index: usize) -> Option<u16> {
        let start = index.checked_mul(2)?;
        let pair = self.as_bytes().get(start..start + 2)?;
        Some(u16::from_be_bytes([*pair.first()?, *pair.get(1)?]))
    }

    /// The values in address order.
    pub fn iter(&self) -> RegisterIter<'a> {
        RegisterIter {
            inner: match self.repr {
                RegisterRepr::Wire(bytes) => RegisterIterInner::Wire(bytes.chunks_exact(2)),
                RegisterRepr::One(bytes) => RegisterIterInner::One(Some(u16::from_be_bytes(bytes))),
            },
        }
    }
}

impl PartialEq for RegisterValues<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for RegisterValues<'_> {}

impl core::hash::Hash for RegisterValues<'_> {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl fmt::Debug for RegisterValues<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for RegisterValues<'a> {
    type Item = u16;
    type IntoIter = RegisterIter<'a>;
    fn into_iter(self) -> RegisterIter<'a> {
        self.iter()
    }
}

/// Iterator over [`RegisterValues`].
#[derive(Debug, Clone)]
pub struct RegisterIter<'a> {
    inner: RegisterIterInner<'a>,
}

#[derive(Debug, Clone)]
enum RegisterIterInner<'a> {
    Wire(core::slice::ChunksExact<'a, u8>),
    One(Option<u16>),
}

impl Iterator for RegisterIter<'_> {
    type Item = u16;
    #[inline]
    fn next(&mut self) -> Option<u16> {
        match &mut self.inner {
            RegisterIterInner::Wire(chunks) => chunks
                .next()
                .and_then(|pair| pair.first_chunk::<2>())
                .map(|pair| u16::from_be_bytes(*pair)),
            RegisterIterInner::One(value) => value.take(),
        }
    }
    /// Internal iteration (`fold`, `sum`, `for_each`) dispatches once, not per value.
    #[inline]
    fn fold<B, F: FnMut(B, u16) -> B>(self, init: B, f: F) -> B {
        match self.inner {
            // `chunks_exact(2)` yields 2-byte slices, so the indexing below cannot fail and
            // compiles to plain loads the optimiser can vectorise.
            RegisterIterInner::Wire(chunks) => chunks
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .fold(init, f),
            RegisterIterInner::One(value) => value.into_iter().fold(init, f),
        }
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match &self.inner {
            RegisterIterInner::Wire(chunks) => chunks.len(),
            RegisterIterInner::One(value) => usize::from(value.is_some()),
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for RegisterIter<'_> {}

/// The values a write request puts on the device, in address order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Written<'a> {
    /// FC 5 (one coil) and FC 15.
    Coils(CoilValues<'a>),
    /// FC 6 (one register), FC 16 and the write half of FC 23.
    Registers(RegisterValues<'a>),
}

impl<'a> Written<'a> {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Self::Coils(c) => c.len(),
            Self::Registers(r) => r.len(),
        }
    }

    /// True when there are no values (never for a parsed request).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The table written.
    pub const fn table(&self) -> Table {
        match self {
            Self::Coils(_) => Table::Coils,
            Self::Registers(_) => Table::HoldingRegisters,
        }
    }

    /// Every value as a `u16` (a coil is 0 or 1), in address order.
    pub fn iter(&self) -> WrittenIter<'a> {
        match self {
            Self::Coils(c) => WrittenIter::Coils(c.iter()),
            Self::Registers(r) => WrittenIter::Registers(r.iter()),
        }
    }
}

impl<'a> IntoIterator for Written<'a> {
    type Item = u16;
    type IntoIter = WrittenIter<'a>;
    fn into_iter(self) -> WrittenIter<'a> {
        self.iter()
    }
}

/// Iterator over [`Written`] values as `u16`.
#[derive(Debug, Clone)]
pub enum WrittenIter<'a> {
    /// Coils as 0/1.
    Coils(CoilIter<'a>),
    /// Registers.
    Registers(RegisterIter<'a>),
}

impl Iterator for WrittenIter<'_> {
    type Item = u16;
    fn next(&mut self) -> Option<u16> {
        match self {
            Self::Coils(it) => it.next().map(u16::from),
            Self::Registers(it) => it.next(),
        }
    }
    #[inline]
    fn fold<B, F: FnMut(B, u16) -> B>(self, init: B, f: F) -> B {
        match self {
            Self::Coils(it) => it.map(u16::from).fold(init, f),
            Self::Registers(it) => it.fold(init, f),
        }
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Self::Coils(it) => it.size_hint(),
            Self::Registers(it) => it.size_hint(),
        }
    }
}

impl ExactSizeIterator for WrittenIter<'_> {}

/// The (table, range) pairs a request touches: 0, 1 or 2 items (FC 23 yields the read range
/// first, then the write range, both in the holding registers).
#[derive(Debug, Clone)]
pub struct Ranges {
    items: [Option<(Table, AddressRange)>; 2],
    index: usize,
}

impl Ranges {
    pub(crate) const fn none() -> Self {
        Self {
            items: [None, None],
            index: 0,
        }
    }

    pub(crate) const fn one(table: Table, range: AddressRange) -> Self {
        Self {
            items: [Some((table, range)), None],
            index: 0,
        }
    }

    pub(crate) const fn two(first: (Table, AddressRange), second: (Table, AddressRange)) -> Self {
        Self {
            items: [Some(first), Some(second)],
            index: 0,
        }
    }
}

impl Iterator for Ranges {
    type Item = (Table, AddressRange);
    fn next(&mut self) -> Option<Self::Item> {
        let item = self.items.get(self.index).copied().flatten()?;
        self.index += 1;
        Some(item)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self
            .items
            .iter()
            .skip(self.index)
            .filter(|i| i.is_some())
            .count();
        (n, Some(n))
    }
}

impl ExactSizeIterator for Ranges {}

/// FC 43 / MEI 14 read device ID code (V1.1b3 §6.21).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReadDeviceIdCode {
    /// 01: basic identification, stream access.
    Basic,
    /// 02: regular identification, stream access.
    Regular,
    /// 03: extended identification, stream access.
    Extended,
    /// 04: one specific object.
    Specific,
}

impl ReadDeviceIdCode {
    /// The code for a wire byte, `None` outside 1..=4.
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            1 => Some(Self::Basic),
            2 => Some(Self::Regular),
            3 => Some(Self::Extended),
            4 => Some(Self::Specific),
            _ => None,
        }
    }

    /// The wire byte.
    pub const fn to_u8(self) -> u8 {
        match self {
            Self::Basic => 1,
            Self::Regular => 2,
            Self::Extended => 3,
            Self::Specific => 4,
        }
    }
}

/// One FC 20 sub-request: which records of which file to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileRecordRef {
    /// File number, 1..=0xFFFF.
    pub file_number: u16,
    /// First record, 0..=0x270F.
    pub record_number: u16,
    /// Number of 16-bit records.
    pub record_length: u16,
}

/// The sub-requests of an FC 20 request (validated: 7 bytes each, reference type 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileRecordRequests<'a> {
    pub(crate) bytes: &'a [u8],
}

impl<'a> FileRecordRequests<'a> {
    /// The raw sub-request bytes (without the byte count).
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Number of sub-requests.
    pub const fn len(&self) -> usize {
        self.bytes.len() / 7
    }

    /// True when there are none (never for a parsed request).
    pub const fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The sub-requests in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = FileRecordRef> + 'a {
        self.bytes.chunks_exact(7).map(|c| {
            let word = |i: usize| {
                u16::from_be_bytes([
                    c.get(i).copied().unwrap_or(0),
                    c.get(i + 1).copied().unwrap_or(0),
                ])
            };
            FileRecordRef {
                file_number: word(1),
                record_number: word(3),
                record_length: word(5),
            }
        })
    }
}

/// One FC 21 sub-request (and its echo): records written to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileRecord<'a> {
    /// File number, 1..=0xFFFF.
    pub file_number: u16,
    /// First record, 0..=0x270F.
    pub record_number: u16,
    /// The record data.
    pub values: RegisterValues<'a>,
}

/// The sub-requests of an FC 21 request or response (validated: reference type 6, lengths
/// consistent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileRecords<'a> {
    pub(crate) bytes: &'a [u8],
}

impl<'a> FileRecords<'a> {
    /// The raw sub-request bytes (without the byte count).
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The sub-requests in order.
    pub fn iter(&self) -> FileRecordIter<'a> {
        FileRecordIter { rest: self.bytes }
    }
}

/// Iterator over [`FileRecords`].
#[derive(Debug, Clone)]
pub struct FileRecordIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for FileRecordIter<'a> {
    type Item = FileRecord<'a>;
    fn next(&mut self) -> Option<FileRecord<'a>> {
        let mut r = crate::cursor::Reader::new(self.rest);
        let _reference = r.read_u8("reference type").ok()?;
        let file_number = r.read_u16("file number").ok()?;
        let record_number = r.read_u16("record number").ok()?;
        let length = r.read_u16("record length").ok()?;
        let data = r.take(length as usize * 2, "record data").ok()?;
        self.rest = r.rest();
        Some(FileRecord {
            file_number,
            record_number,
            values: RegisterValues::new(data)?,
        })
    }
}

/// The sub-responses of an FC 20 response: one run of record data per sub-request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileRecordResponses<'a> {
    pub(crate) bytes: &'a [u8],
}

impl<'a> FileRecordResponses<'a> {
    /// The raw sub-response bytes (without the byte count).
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The record data of each sub-response, in order.
    pub fn iter(&self) -> FileRecordResponseIter<'a> {
        FileRecordResponseIter { rest: self.bytes }
    }
}

/// Iterator over [`FileRecordResponses`].
#[derive(Debug, Clone)]
pub struct FileRecordResponseIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for FileRecordResponseIter<'a> {
    type Item = RegisterValues<'a>;
    fn next(&mut self) -> Option<RegisterValues<'a>> {
        let mut r = crate::cursor::Reader::new(self.rest);
        let length = r.read_u8("file response length").ok()?;
        let _reference = r.read_u8("reference type").ok()?;
        let data = r
            .take((length as usize).checked_sub(1)?, "record data")
            .ok()?;
        self.rest = r.rest();
        RegisterValues::new(data)
    }
}

/// One FC 43/14 device identification object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceObject<'a> {
    /// Object id (0 vendor name, 1 product code, 2 revision, ...).
    pub id: u8,
    /// Object value (usually ASCII).
    pub value: &'a [u8],
}

/// The objects of an FC 43/14 response (validated: count and lengths consistent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceObjects<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) count: u8,
}

impl<'a> DeviceObjects<'a> {
    /// Number of objects.
    pub const fn len(&self) -> usize {
        self.count as usize
    }

    /// True when there are none.
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The raw object list bytes.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The objects in order.
    pub fn iter(&self) -> DeviceObjectIter<'a> {
        DeviceObjectIter { rest: self.bytes }
    }
}

/// Iterator over [`DeviceObjects`].
#[derive(Debug, Clone)]
pub struct DeviceObjectIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for DeviceObjectIter<'a> {
    type Item = DeviceObject<'a>;
    fn next(&mut self) -> Option<DeviceObject<'a>> {
        let mut r = crate::cursor::Reader::new(self.rest);
        let id = r.read_u8("object id").ok()?;
        let len = r.read_u8("object length").ok()?;
        let value = r.take(len as usize, "object value").ok()?;
        self.rest = r.rest();
        Some(DeviceObject { id, value })
    }
}

/// The body of an FC 43/14 Read Device Identification response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceIdentification<'a> {
    /// The read code the request used.
    pub read_code: ReadDeviceIdCode,
    /// Conformity level as sent: the spec's are 0x01-0x03 and 0x81-0x83 (see
    /// [`Self::conformity_is_standard`]); other values are accepted, since it only describes
    /// the device.
    pub conformity_level: u8,
    /// More objects follow (the wire byte 0xFF).
    pub more_follows: bool,
    /// Where the next request should start.
    pub next_object_id: u8,
    /// The objects.
    pub objects: DeviceObjects<'a>,
}

impl DeviceIdentification<'_> {
    /// True when the conformity level is one the spec defines (0x01-0x03, 0x81-0x83); a
    /// device that sends another value (0x00 is seen in the field) is off-spec but answered.
    pub fn conformity_is_standard(&self) -> bool {
        matches!(self.conformity_level, 0x01..=0x03 | 0x81..=0x83)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coil_values_unpack_lsb_first() {
        let c = CoilValues::new(&[0b0000_0101, 0b1], 9).unwrap();
        let bits: [bool; 9] = core::array::from_fn(|i| c.get(i).unwrap());
        assert_eq!(
            bits,
            [true, false, true, false, false, false, false, false, true]
        );
        assert_eq!(c.get(9), None);
        assert!(c.padding_is_zero());
        assert!(!CoilValues::new(&[0b10], 1).unwrap().padding_is_zero());
        assert!(CoilValues::new(&[0, 0], 8).is_none());
        assert_eq!(CoilValues::single(true).iter().collect::<Vec<_>>(), [true]);
    }

    #[test]
    fn register_values() {
        let r = RegisterValues::new(&[0x12, 0x34, 0xAB, 0xCD]).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r.get(1), Some(0xABCD));
        assert_eq!(r.get(2), None);
        assert_eq!(RegisterValues::single(0x1234).get(0), Some(0x1234));
        assert_eq!(
            RegisterValues::single(0x1234),
            RegisterValues::new(&[0x12, 0x34]).unwrap()
        );
        assert!(RegisterValues::new(&[1]).is_none());
    }

    #[test]
    fn fold_agrees_with_next() {
        let bytes = [0x12, 0x34, 0xAB, 0xCD, 0x00, 0x01];
        let all = [
            Written::Registers(RegisterValues::new(&bytes).unwrap()),
            Written::Registers(RegisterValues::single(7)),
            Written::Coils(CoilValues::new(&bytes, 41).unwrap()),
            Written::Coils(CoilValues::single(true)),
        ];
        for w in all {
            let mut by_next = Vec::new();
            // A `for` loop calls `next`.
            for v in w.iter() {
                by_next.push(v);
            }
            let by_fold = w.iter().fold(Vec::new(), |mut acc, v| {
                acc.push(v);
                acc
            });
            assert_eq!(by_next, by_fold);
            assert_eq!(by_next.len(), w.len());
        }
    }

    #[test]
    fn ranges_iterate() {
        let a = AddressRange::new(1, 2).unwrap();
        let mut r = Ranges::two((Table::HoldingRegisters, a), (Table::HoldingRegisters, a));
        assert_eq!(r.len(), 2);
        assert!(r.next().is_some() && r.next().is_some() && r.next().is_none());
        assert_eq!(Ranges::none().len(), 0);
    }
}
