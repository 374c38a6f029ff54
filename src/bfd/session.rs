//! One BFD session's state machine (RFC 5880 section 6.8), asynchronous mode, without
//! authentication, Echo or Demand mode of our own.
//!
//! Pure: `Session::handle` takes an event and returns the actions for the caller to
//! carry out, in order. Time enters only as timer events, randomness only through the
//! `Jitter` passed in. The caller owns two timers per session, transmit and detection;
//! arming one replaces whatever it was armed for before.
use std::num::{NonZeroU32, NonZeroU8};
use std::time::Duration;

use super::codes::{Diagnostic, State};
use super::packet::Repr;
use super::timers::{
    detection_time, jittered, transmit_interval, Jitter, INITIAL_REMOTE_MIN_RX, SLOW_TX_INTERVAL,
};

/// bird's and FRR's usual multiplier, and the default.
pub const DEFAULT_DETECT_MULT: NonZeroU8 = NonZeroU8::new(3).expect("3 is not zero");

/// What the operator chose for one session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub desired_min_tx: Duration,
    pub required_min_rx: Duration,
    /// A zero multiplier would be a packet every receiver discards.
    pub detect_mult: NonZeroU8,
}

impl Default for Config {
    /// bird's and FRR's usual 300 ms x 3, the defaults.
    fn default() -> Config {
        Config {
            desired_min_tx: Duration::from_millis(300),
            required_min_rx: Duration::from_millis(300),
            detect_mult: DEFAULT_DETECT_MULT,
        }
    }
}

/// The two intervals we announce, which a Poll Sequence changes (section 6.8.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Intervals {
    desired_min_tx: Duration,
    required_min_rx: Duration,
}

impl Intervals {
    /// What the configuration asks for in `state`: at most one packet a second while
    /// not Up (section 6.8.3).
    fn for_state(config: &Config, state: State) -> Intervals {
        let desired_min_tx = if state == State::Up {
            config.desired_min_tx
        } else {
            config.desired_min_tx.max(SLOW_TX_INTERVAL)
        };
        Intervals {
            desired_min_tx,
            required_min_rx: config.required_min_rx,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A packet that passed the codec's checks and the discriminator lookup.
    Received(Repr),
    TransmitTimerExpired,
    DetectionTimerExpired,
    AdminDown,
    AdminUp,
    ConfigChanged(Config),
}

/// Why a session left Up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownCause {
    /// No packet within the detection time: the path failed.
    DetectionTimeExpired,
    /// The peer said Down: it stopped hearing us, so the path failed one way.
    NeighborDown,
    /// The peer said AdminDown: someone turned BFD off there, the path may be fine.
    NeighborAdminDown,
    /// We were told to go AdminDown.
    AdminDown,
}

impl DownCause {
    /// The Diag we send afterwards (section 6.8.6 and 6.8.16).
    pub fn diagnostic(self) -> Diagnostic {
        match self {
            DownCause::DetectionTimeExpired => Diagnostic::ControlDetectionTimeExpired,
            DownCause::NeighborDown | DownCause::NeighborAdminDown => {
                Diagnostic::NeighborSignaledSessionDown
            }
            DownCause::AdminDown => Diagnostic::AdministrativelyDown,
        }
    }

    /// Whether a client such as BGP should treat this as a failed path and close its
    /// session. RFC 5882 section 3.2: an AdminDown on either side is not a failure.
    pub fn is_path_failure(self) -> bool {
        matches!(
            self,
            DownCause::DetectionTimeExpired | DownCause::NeighborDown
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this packet now.
    Send(Repr),
    /// (Re)arm the transmit timer: `TransmitTimerExpired` after this long.
    ArmTransmitTimer(Duration),
    /// (Re)arm the detection timer: `DetectionTimerExpired` after this long.
    ArmDetectionTimer(Duration),
    StopDetectionTimer,
    /// The session reached Up.
    SessionUp,
    /// The session left Up.
    SessionDown(DownCause),
}

#[derive(Clone, Debug)]
pub struct Session {
    config: Config,
    state: State,
    local_discr: NonZeroU32,
    local_diag: Diagnostic,
    /// The intervals our timing follows.
    active: Intervals,
    /// The intervals a Poll Sequence announces; they become `active` with the Final.
    polling: Option<Intervals>,
    remote_state: State,
    remote_discr: u32,
    remote_min_rx: Duration,
    remote_desired_min_tx: Duration,
    remote_detect_mult: u8,
    remote_demand: bool,
    /// The interval (before jitter) the transmit timer was last armed for.
    armed_tx_interval: Option<Duration>,
}

impl Session {
    /// A session in Down; nothing happens until `start`.
    pub fn new(config: Config, local_discr: NonZeroU32) -> Session {
        Session {
            config,
            state: State::Down,
            local_discr,
            local_diag: Diagnostic::NoDiagnostic,
            active: Intervals::for_state(&config, State::Down),
            polling: None,
            remote_state: State::Down,
            remote_discr: 0,
            remote_min_rx: INITIAL_REMOTE_MIN_RX,
            remote_desired_min_tx: Duration::ZERO,
            remote_detect_mult: 0,
            remote_demand: false,
            armed_tx_interval: None,
        }
    }

    /// The first packet, at once, and the transmit timer.
    pub fn start(&mut self, jitter: &mut dyn Jitter) -> Vec<Action> {
        let mut actions = vec![Action::Send(self.packet(false, false))];
        self.arm_transmit(jitter, &mut actions);
        actions
    }

    pub fn handle(&mut self, event: Event, jitter: &mut dyn Jitter) -> Vec<Action> {
        let mut actions = Vec::new();
        let before = self.state;
        match event {
            Event::Received(repr) => self.receive(&repr, &mut actions),
            Event::TransmitTimerExpired => {
                if self.may_transmit_periodically() {
                    let poll = self.polling.is_some();
                    actions.push(Action::Send(self.packet(poll, false)));
                }
                // Forget the interval so that the timer is armed again below.
                self.armed_tx_interval = None;
            }
            Event::DetectionTimerExpired => self.detection_expired(&mut actions),
            Event::AdminDown => {
                if self.state != State::AdminDown {
                    self.go_down(State::AdminDown, DownCause::AdminDown, &mut actions);
                    actions.push(Action::StopDetectionTimer);
                }
            }
            Event::AdminUp => {
                if self.state == State::AdminDown {
                    self.state = State::Down;
                    self.local_diag = Diagnostic::NoDiagnostic;
                }
            }
            Event::ConfigChanged(config) => self.reconfigure(config),
        }
        let sent = actions.iter().any(|a| matches!(a, Action::Send(_)));
        if self.state != before && !sent {
            // Tell the peer now, not at the next tick, as bird and FRR do: each step of
            // the handshake, and a failure we detected, then costs a round trip instead
            // of up to a second. The transmit timer starts over from this packet.
            actions.push(Action::Send(self.packet(self.polling.is_some(), false)));
            self.armed_tx_interval = None;
        }
        self.rearm_transmit_if_changed(jitter, &mut actions);
        actions
    }

    /// Section 6.8.6, from the point where the packet is known to be for this session.
    fn receive(&mut self, repr: &Repr, actions: &mut Vec<Action>) {
        // The lookup should have routed it elsewhere; a session takes no chances.
        if repr.your_discriminator != 0 && repr.your_discriminator != self.local_discr.get() {
            return;
        }
        self.remote_discr = repr.my_discriminator;
        self.remote_state = repr.state;
        self.remote_demand = repr.demand;
        self.remote_min_rx = repr.required_min_rx;
        self.remote_desired_min_tx = repr.desired_min_tx;
        self.remote_detect_mult = repr.detect_mult;
        if repr.final_ {
            if let Some(polled) = self.polling.take() {
                self.active = polled;
                // Changes made while that Poll was out need a Poll of their own.
                self.start_poll_if_needed();
            }
        }
        if self.state == State::AdminDown {
            return;
        }
        match (self.state, repr.state) {
            (State::Init | State::Up, State::AdminDown) => {
                self.go_down(State::Down, DownCause::NeighborAdminDown, actions);
            }
            (State::Down, State::Down) => self.state = State::Init,
            (State::Down, State::Init) | (State::Init, State::Init | State::Up) => {
                self.go_up(actions);
            }
            (State::Up, State::Down) => self.go_down(State::Down, DownCause::NeighborDown, actions),
            _ => {}
        }
        if repr.poll {
            actions.push(Action::Send(self.packet(false, true)));
        }
        actions.push(Action::ArmDetectionTimer(self.detection_time()));
    }

    fn detection_expired(&mut self, actions: &mut Vec<Action>) {
        // Section 6.8.1: the peer is gone, and so is what we knew of it. Its last
        // RequiredMinRx (perhaps zero, "send nothing") no longer holds us back either.
        self.remote_discr = 0;
        self.remote_state = State::Down;
        self.remote_min_rx = INITIAL_REMOTE_MIN_RX;
        self.remote_demand = false;
        if matches!(self.state, State::Init | State::Up) {
            self.go_down(State::Down, DownCause::DetectionTimeExpired, actions);
        }
    }

    fn go_up(&mut self, actions: &mut Vec<Action>) {
        self.state = State::Up;
        self.local_diag = Diagnostic::NoDiagnostic;
        // Leaving the one-second floor is a change of DesiredMinTxInterval.
        self.start_poll_if_needed();
        actions.push(Action::SessionUp);
    }

    fn go_down(&mut self, state: State, cause: DownCause, actions: &mut Vec<Action>) {
        let was_up = self.state == State::Up;
        self.state = state;
        self.local_diag = cause.diagnostic();
        // A Poll Sequence ends with the session, and the one-second floor applies at
        // once: our next packet says Down, which takes the peer down whatever its
        // detection time.
        self.polling = None;
        self.active = Intervals::for_state(&self.config, state);
        if was_up {
            actions.push(Action::SessionDown(cause));
        }
    }

    fn reconfigure(&mut self, config: Config) {
        self.config = config;
        if self.state == State::Up {
            // Sections 6.5 and 6.8.3: the peer must learn of the change before we rely
            // on it. A Poll already out finishes first; its Final starts the next one.
            if self.polling.is_none() {
                self.start_poll_if_needed();
            }
        } else {
            self.active = Intervals::for_state(&config, self.state);
        }
    }

    fn start_poll_if_needed(&mut self) {
        let wanted = Intervals::for_state(&self.config, self.state);
        if self.state == State::Up && wanted != self.active {
            self.polling = Some(wanted);
        }
    }

    /// Section 6.8.7: not while the peer asks for no packets (zero RequiredMinRx) or
    /// runs Demand mode with both sides Up.
    fn may_transmit_periodically(&self) -> bool {
        let remote_demand_active =
            self.remote_demand && self.state == State::Up && self.remote_state == State::Up;
        !self.remote_min_rx.is_zero() && !remote_demand_active
    }

    fn arm_transmit(&mut self, jitter: &mut dyn Jitter, actions: &mut Vec<Action>) {
        let interval = self.transmit_interval();
        self.armed_tx_interval = Some(interval);
        actions.push(Action::ArmTransmitTimer(jittered(
            interval,
            self.config.detect_mult.get(),
            jitter.next_u32(),
        )));
    }

    /// A faster rate must start now, not after the slower timer runs out: the peer's
    /// detection time follows what we announce.
    fn rearm_transmit_if_changed(&mut self, jitter: &mut dyn Jitter, actions: &mut Vec<Action>) {
        if self.armed_tx_interval != Some(self.transmit_interval()) {
            self.arm_transmit(jitter, actions);
        }
    }

    /// What we announce: the Poll's values while one is out.
    fn announced(&self) -> Intervals {
        self.polling.unwrap_or(self.active)
    }

    /// The packet to send (section 6.8.7). Never both Poll and Final.
    pub fn packet(&self, poll: bool, final_: bool) -> Repr {
        let announced = self.announced();
        Repr {
            state: self.state,
            diagnostic: self.local_diag,
            poll: poll && !final_,
            final_,
            // Our BFD runs in the same process as BGP.
            control_plane_independent: false,
            demand: false,
            detect_mult: self.config.detect_mult.get(),
            my_discriminator: self.local_discr.get(),
            your_discriminator: self.remote_discr,
            desired_min_tx: announced.desired_min_tx,
            required_min_rx: announced.required_min_rx,
            // No Echo function.
            required_min_echo_rx: Duration::ZERO,
        }
    }

    /// Our interval before jitter. During a Poll the faster of old and new: sending
    /// faster than announced is harmless, slower is not until the peer knows.
    pub fn transmit_interval(&self) -> Duration {
        let desired = match self.polling {
            Some(polled) => polled.desired_min_tx.min(self.active.desired_min_tx),
            None => self.active.desired_min_tx,
        };
        transmit_interval(desired, self.remote_min_rx)
    }

    /// How long we wait for the peer's next packet. During a Poll the longer of old and
    /// new: the peer may still be sending at the rate it agreed to before.
    pub fn detection_time(&self) -> Duration {
        let required = match self.polling {
            Some(polled) => polled.required_min_rx.max(self.active.required_min_rx),
            None => self.active.required_min_rx,
        };
        detection_time(
            self.remote_detect_mult,
            required,
            self.remote_desired_min_tx,
        )
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn remote_state(&self) -> State {
        self.remote_state
    }

    pub fn local_diagnostic(&self) -> Diagnostic {
        self.local_diag
    }

    pub fn local_discriminator(&self) -> NonZeroU32 {
        self.local_discr
    }

    /// Zero until the peer's first packet, and again after a detection time without one.
    pub fn remote_discriminator(&self) -> u32 {
        self.remote_discr
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether a Poll Sequence is waiting for its Final.
    pub fn polling(&self) -> bool {
        self.polling.is_some()
    }
}
