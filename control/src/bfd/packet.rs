//! BFD control packet codec (RFC 5880 section 4.1) and the per-packet reception checks of
//! section 6.8.6 that need no session state.

use std::fmt;
use std::time::Duration;

/// Length of the mandatory section of a control packet, in bytes.
pub const CONTROL_LEN: usize = 24;

/// Minimum length when the A bit is set: the mandatory section plus the smallest
/// authentication section (RFC 5880 section 6.8.6).
pub const CONTROL_LEN_WITH_AUTH: usize = 26;

/// The only protocol version this codec speaks.
pub const VERSION: u8 = 1;

/// Session state as carried in the Sta field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    AdminDown,
    Down,
    Init,
    Up,
}

impl State {
    /// Decodes the two-bit Sta field; every value is assigned.
    pub fn from_bits(bits: u8) -> State {
        match bits & 0x3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    /// Encodes the state as the two-bit Sta field.
    pub fn to_bits(self) -> u8 {
        match self {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            State::AdminDown => "admin-down",
            State::Down => "down",
            State::Init => "init",
            State::Up => "up",
        };
        f.write_str(name)
    }
}

/// Diagnostic code: the reason for the last change in local state (RFC 5880 section 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diagnostic {
    None,
    ControlDetectionTimeExpired,
    EchoFunctionFailed,
    NeighborSignaledSessionDown,
    ForwardingPlaneReset,
    PathDown,
    ConcatenatedPathDown,
    AdministrativelyDown,
    ReverseConcatenatedPathDown,
    /// Values 9-31, reserved for future use; kept so a packet that carries one still parses.
    Unassigned(u8),
}

impl Diagnostic {
    /// Decodes the five-bit Diag field.
    pub fn from_bits(bits: u8) -> Diagnostic {
        match bits & 0x1f {
            0 => Diagnostic::None,
            1 => Diagnostic::ControlDetectionTimeExpired,
            2 => Diagnostic::EchoFunctionFailed,
            3 => Diagnostic::NeighborSignaledSessionDown,
            4 => Diagnostic::ForwardingPlaneReset,
            5 => Diagnostic::PathDown,
            6 => Diagnostic::ConcatenatedPathDown,
            7 => Diagnostic::AdministrativelyDown,
            8 => Diagnostic::ReverseConcatenatedPathDown,
            other => Diagnostic::Unassigned(other),
        }
    }

    /// Encodes the diagnostic as the five-bit Diag field.
    pub fn to_bits(self) -> u8 {
        match self {
            Diagnostic::None => 0,
            Diagnostic::ControlDetectionTimeExpired => 1,
            Diagnostic::EchoFunctionFailed => 2,
            Diagnostic::NeighborSignaledSessionDown => 3,
            Diagnostic::ForwardingPlaneReset => 4,
            Diagnostic::PathDown => 5,
            Diagnostic::ConcatenatedPathDown => 6,
            Diagnostic::AdministrativelyDown => 7,
            Diagnostic::ReverseConcatenatedPathDown => 8,
            Diagnostic::Unassigned(bits) => bits & 0x1f,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diagnostic::None => f.write_str("no diagnostic"),
            Diagnostic::ControlDetectionTimeExpired => {
                f.write_str("control detection time expired")
            }
            Diagnostic::EchoFunctionFailed => f.write_str("echo function failed"),
            Diagnostic::NeighborSignaledSessionDown => {
                f.write_str("neighbor signaled session down")
            }
            Diagnostic::ForwardingPlaneReset => f.write_str("forwarding plane reset"),
            Diagnostic::PathDown => f.write_str("path down"),
            Diagnostic::ConcatenatedPathDown => f.write_str("concatenated path down"),
            Diagnostic::AdministrativelyDown => f.write_str("administratively down"),
            Diagnostic::ReverseConcatenatedPathDown => {
                f.write_str("reverse concatenated path down")
            }
            Diagnostic::Unassigned(bits) => write!(f, "unassigned diagnostic {bits}"),
        }
    }
}

/// The six one-bit flags of the second byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags {
    /// P: the sender requests verification of connectivity or of a parameter change.
    pub poll: bool,
    /// F: the sender answers a received Poll.
    pub final_: bool,
    /// C: the sender's BFD runs independently of its control plane.
    pub control_plane_independent: bool,
    /// A: an authentication section follows. Peer paths check it (see `bfd::auth`);
    /// single-hop sessions run no authentication and drop such packets.
    pub authentication_present: bool,
    /// D: the sender wants to run in Demand mode.
    pub demand: bool,
    /// M: reserved for multipoint BFD; must be zero.
    pub multipoint: bool,
}

impl Flags {
    fn from_byte(byte: u8) -> Flags {
        Flags {
            poll: byte & 0x20 != 0,
            final_: byte & 0x10 != 0,
            control_plane_independent: byte & 0x08 != 0,
            authentication_present: byte & 0x04 != 0,
            demand: byte & 0x02 != 0,
            multipoint: byte & 0x01 != 0,
        }
    }

    fn to_bits(self) -> u8 {
        (u8::from(self.poll) << 5)
            | (u8::from(self.final_) << 4)
            | (u8::from(self.control_plane_independent) << 3)
            | (u8::from(self.authentication_present) << 2)
            | (u8::from(self.demand) << 1)
            | u8::from(self.multipoint)
    }
}

/// A control packet rejected by the reception checks of RFC 5880 section 6.8.6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// The datagram is shorter than the 24-byte mandatory section.
    Truncated { datagram: usize },
    /// The version field is not 1.
    BadVersion { version: u8 },
    /// The length field is below the minimum (24, or 26 with the A bit set).
    LengthTooShort { length: u8, minimum: u8 },
    /// The length field claims more bytes than the datagram holds.
    LengthExceedsDatagram { length: u8, datagram: usize },
    /// The detect multiplier is zero.
    ZeroDetectMult,
    /// The multipoint bit is set.
    MultipointSet,
    /// My Discriminator is zero.
    ZeroMyDiscriminator,
    /// Your Discriminator is zero while the state is neither Down nor AdminDown.
    ZeroYourDiscriminator { state: State },
    /// The A bit is set on a single-hop packet, and single-hop sessions run no
    /// authentication. The engine raises it: the codec itself accepts the A bit.
    AuthenticationUnsupported,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Truncated { datagram } => {
                write!(
                    f,
                    "datagram of {datagram} bytes is shorter than a {CONTROL_LEN}-byte bfd control packet"
                )
            }
            ParseError::BadVersion { version } => {
                write!(f, "bfd version {version} is not supported, expected {VERSION}")
            }
            ParseError::LengthTooShort { length, minimum } => {
                write!(f, "bfd length field {length} is below the minimum of {minimum}")
            }
            ParseError::LengthExceedsDatagram { length, datagram } => {
                write!(f, "bfd length field {length} exceeds the {datagram}-byte datagram")
            }
            ParseError::ZeroDetectMult => f.write_str("bfd detect multiplier is zero"),
            ParseError::MultipointSet => f.write_str("bfd multipoint bit is set"),
            ParseError::ZeroMyDiscriminator => f.write_str("bfd my discriminator is zero"),
            ParseError::ZeroYourDiscriminator { state } => {
                write!(
                    f,
                    "bfd your discriminator is zero in state {state}, expected down or admin-down"
                )
            }
            ParseError::AuthenticationUnsupported => {
                f.write_str("bfd authentication bit is set but authentication is not supported")
            }
        }
    }
}

impl std::error::Error for ParseError {}

/// Output buffer too small for the packet being emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferTooSmall {
    pub needed: usize,
    pub available: usize,
}

impl fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "output buffer of {} bytes is too small, {} needed", self.available, self.needed)
    }
}

impl std::error::Error for BufferTooSmall {}

/// A length-checked view over the bytes of a control packet.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-----+---------+---+-+-+-+-+-+-+---------------+---------------+
/// | Ver |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
/// +-----+---------+---+-+-+-+-+-+-+---------------+---------------+
/// |                       My Discriminator                        |
/// +---------------------------------------------------------------+
/// |                      Your Discriminator                       |
/// +---------------------------------------------------------------+
/// |               Desired Min TX Interval (microseconds)          |
/// +---------------------------------------------------------------+
/// |               Required Min RX Interval (microseconds)         |
/// +---------------------------------------------------------------+
/// |            Required Min Echo RX Interval (microseconds)       |
/// +---------------------------------------------------------------+
/// ```
///
/// Every accessor is safe once [`ControlView::new_checked`] has seen 24 bytes.
#[derive(Debug, Clone, Copy)]
pub struct ControlView<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ControlView<T> {
    /// Wraps `buffer` after checking it holds at least the mandatory section.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let datagram = buffer.as_ref().len();
        if datagram < CONTROL_LEN {
            return Err(ParseError::Truncated { datagram });
        }
        Ok(ControlView { buffer })
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn word(&self, offset: usize) -> u32 {
        let b = self.bytes();
        u32::from_be_bytes([b[offset], b[offset + 1], b[offset + 2], b[offset + 3]])
    }

    pub fn version(&self) -> u8 {
        self.bytes()[0] >> 5
    }

    pub fn diagnostic(&self) -> Diagnostic {
        Diagnostic::from_bits(self.bytes()[0])
    }

    pub fn state(&self) -> State {
        State::from_bits(self.bytes()[1] >> 6)
    }

    pub fn flags(&self) -> Flags {
        Flags::from_byte(self.bytes()[1])
    }

    pub fn detect_mult(&self) -> u8 {
        self.bytes()[2]
    }

    pub fn length(&self) -> u8 {
        self.bytes()[3]
    }

    pub fn my_discriminator(&self) -> u32 {
        self.word(4)
    }

    pub fn your_discriminator(&self) -> u32 {
        self.word(8)
    }

    pub fn desired_min_tx_us(&self) -> u32 {
        self.word(12)
    }

    pub fn required_min_rx_us(&self) -> u32 {
        self.word(16)
    }

    pub fn required_min_echo_rx_us(&self) -> u32 {
        self.word(20)
    }

    /// The whole datagram; bytes past `length()` belong to whatever the transport carries
    /// after the control packet.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

/// A decoded control packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlPacket {
    pub diagnostic: Diagnostic,
    pub state: State,
    pub flags: Flags,
    pub detect_mult: u8,
    pub my_discriminator: u32,
    pub your_discriminator: u32,
    pub desired_min_tx: Duration,
    pub required_min_rx: Duration,
    pub required_min_echo_rx: Duration,
}

impl ControlPacket {
    /// Parses a datagram and applies the stateless checks of RFC 5880 section 6.8.6, in the
    /// order the RFC lists them. Returns the packet and the length the Length field covers,
    /// which includes any authentication section.
    pub fn parse(datagram: &[u8]) -> Result<(ControlPacket, usize), ParseError> {
        let view = ControlView::new_checked(datagram)?;

        // "If the version number is not correct (1), the packet MUST be discarded."
        if view.version() != VERSION {
            return Err(ParseError::BadVersion { version: view.version() });
        }

        // "If the Length field is less than the minimum correct value (24 if the A bit is
        // clear, or 26 if the A bit is set), the packet MUST be discarded."
        let flags = view.flags();
        let minimum =
            if flags.authentication_present { CONTROL_LEN_WITH_AUTH } else { CONTROL_LEN };
        let length = view.length();
        if usize::from(length) < minimum {
            // `minimum` is 24 or 26, so it fits the u8 field.
            return Err(ParseError::LengthTooShort { length, minimum: minimum as u8 });
        }

        // "If the Length field is greater than the payload of the encapsulating protocol,
        // the packet MUST be discarded."
        if usize::from(length) > datagram.len() {
            return Err(ParseError::LengthExceedsDatagram { length, datagram: datagram.len() });
        }

        // "If the Detect Mult field is zero, the packet MUST be discarded."
        if view.detect_mult() == 0 {
            return Err(ParseError::ZeroDetectMult);
        }

        // "If the Multipoint (M) bit is nonzero, the packet MUST be discarded."
        if flags.multipoint {
            return Err(ParseError::MultipointSet);
        }

        // "If the My Discriminator field is zero, the packet MUST be discarded."
        if view.my_discriminator() == 0 {
            return Err(ParseError::ZeroMyDiscriminator);
        }

        // "If the Your Discriminator field is zero and the State field is not Down or
        // AdminDown, the packet MUST be discarded." Matching a non-zero Your Discriminator
        // against a session is the demultiplexer's job.
        let state = view.state();
        if view.your_discriminator() == 0 && !matches!(state, State::Down | State::AdminDown) {
            return Err(ParseError::ZeroYourDiscriminator { state });
        }

        // "If the A bit is set and no authentication is in use (bfd.AuthType is zero), the
        // packet MUST be discarded." Whether authentication is in use depends on the
        // session, so the engine applies this check.

        let packet = ControlPacket {
            diagnostic: view.diagnostic(),
            state,
            flags,
            detect_mult: view.detect_mult(),
            my_discriminator: view.my_discriminator(),
            your_discriminator: view.your_discriminator(),
            desired_min_tx: Duration::from_micros(u64::from(view.desired_min_tx_us())),
            required_min_rx: Duration::from_micros(u64::from(view.required_min_rx_us())),
            required_min_echo_rx: Duration::from_micros(u64::from(view.required_min_echo_rx_us())),
        };
        Ok((packet, usize::from(length)))
    }

    /// Writes the 24-byte packet into the start of `buffer`; returns the bytes written.
    pub fn emit(&self, buffer: &mut [u8]) -> Result<usize, BufferTooSmall> {
        if buffer.len() < CONTROL_LEN {
            return Err(BufferTooSmall { needed: CONTROL_LEN, available: buffer.len() });
        }
        buffer[0] = (VERSION << 5) | self.diagnostic.to_bits();
        buffer[1] = (self.state.to_bits() << 6) | self.flags.to_bits();
        buffer[2] = self.detect_mult;
        // CONTROL_LEN is 24. On peer paths `bfd::auth` appends the authentication section
        // and rewrites the A bit and this field.
        buffer[3] = CONTROL_LEN as u8;
        buffer[4..8].copy_from_slice(&self.my_discriminator.to_be_bytes());
        buffer[8..12].copy_from_slice(&self.your_discriminator.to_be_bytes());
        buffer[12..16].copy_from_slice(&micros_field(self.desired_min_tx).to_be_bytes());
        buffer[16..20].copy_from_slice(&micros_field(self.required_min_rx).to_be_bytes());
        buffer[20..24].copy_from_slice(&micros_field(self.required_min_echo_rx).to_be_bytes());
        Ok(CONTROL_LEN)
    }

    /// Returns the packet as its 24 wire bytes.
    pub fn to_bytes(&self) -> [u8; CONTROL_LEN] {
        let mut out = [0u8; CONTROL_LEN];
        // The array has exactly CONTROL_LEN bytes, so emit cannot fail.
        let _ = self.emit(&mut out);
        out
    }
}

/// Converts an interval to the 32-bit microsecond field, saturating at about 71 minutes.
fn micros_field(interval: Duration) -> u32 {
    u32::try_from(interval.as_micros()).unwrap_or(u32::MAX)
}
