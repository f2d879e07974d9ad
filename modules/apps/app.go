package apps

import (
	"slices"
	"strings"
	"time"
)

// Who may send client events, as accept_client_events_from says.
const (
	ClientEventsMembers = "members" // subscribers of private and presence channels
	ClientEventsAll     = "all"     // also public channels (Reverb's behaviour)
	ClientEventsNone    = "none"    // nobody
)

// Defaults for the limits an app may leave unset.
const (
	DefaultPingInterval          = 60 * time.Second
	DefaultActivityTimeout       = 30 * time.Second
	DefaultMaxMessageSize        = 10_000
	DefaultMaxPresenceMembers    = 100
	DefaultMaxPresenceUserInfo   = 2_048
	DefaultClientEventsPerSecond = 10
	DefaultSigninTimeout         = 30 * time.Second
)

// App is one application: its credentials and the limits that apply to its
// sockets. It mirrors Reverb's Application.
type App struct {
	ID     string
	Key    string
	Secret string

	// PingInterval is the client silence after which the server pings.
	PingInterval time.Duration
	// ActivityTimeout is sent to clients in pusher:connection_established.
	ActivityTimeout time.Duration
	// MaxMessageSize is the largest client frame in bytes.
	MaxMessageSize int
	// MaxConnections caps open sockets; 0 means no cap.
	MaxConnections int
	// AllowedOrigins lists hosts allowed in the Origin header; "*" allows all
	// and "*.example.com" any subdomain.
	AllowedOrigins []string
	// AcceptClientEventsFrom is ClientEventsMembers, ClientEventsAll or ClientEventsNone.
	AcceptClientEventsFrom string
	// MaxPresenceMembers caps the members of one presence channel.
	MaxPresenceMembers int
	// MaxPresenceUserInfo caps the size of one member's user_info in bytes.
	MaxPresenceUserInfo int
	// ClientEventsPerSecond caps client events per socket; 0 means no cap.
	ClientEventsPerSecond int

	// SubscriptionCount tells the subscribers of non-presence channels the
	// channel's cluster-wide subscription count when it changes
	// (pusher_internal:subscription_count, at most once a second).
	SubscriptionCount bool
	// RequireSignin closes, with 4009, a socket that has not sent a valid
	// pusher:signin within SigninTimeout.
	RequireSignin bool
	SigninTimeout time.Duration

	// RateLimit caps every socket's data messages, as Reverb's
	// rate_limiting does.
	RateLimit RateLimit

	// Webhooks are the app's webhooks, each sent every event it wants.
	Webhooks []Webhook
	// WebhookBatching sends several events per POST.
	WebhookBatching bool
}

// RateLimit is Reverb's per-socket message limit: at most MaxAttempts
// data messages in a window of Decay from the first; one more is answered
// pusher:error 4301, and with Terminate the socket is closed. Off unless
// Enabled.
type RateLimit struct {
	Enabled     bool
	MaxAttempts int
	Decay       time.Duration
	Terminate   bool
}

// Defaults of RateLimit, as Reverb's.
const (
	DefaultRateLimitMaxAttempts = 60
	DefaultRateLimitDecay       = 60 * time.Second
)

// Webhook is one URL that receives an app's webhook events (Pusher's
// contract: a signed POST of {"time_ms", "events"}).
type Webhook struct {
	// URL is where events are POSTed: http or https.
	URL string `json:"url" yaml:"url"`
	// EventTypes are the event names it wants (pusher.WebhookEvents);
	// empty: every one.
	EventTypes []string `json:"event_types,omitempty" yaml:"event_types"`
	// Filter keeps the events of some channels only.
	Filter WebhookFilter `json:"filter,omitempty" yaml:"filter"`
	// Headers are sent with every POST; they never replace X-Pusher-*.
	Headers map[string]string `json:"headers,omitempty" yaml:"headers"`
}

// WebhookFilter keeps the events of channels whose names start and end
// as given (an empty string matches every name).
type WebhookFilter struct {
	ChannelNameStartsWith string `json:"channel_name_starts_with,omitempty" yaml:"channel_name_starts_with"`
	ChannelNameEndsWith   string `json:"channel_name_ends_with,omitempty" yaml:"channel_name_ends_with"`
}

// Wants reports whether the webhook takes event name about channel.
func (w *Webhook) Wants(name, channel string) bool {
	if len(w.EventTypes) > 0 && !slices.Contains(w.EventTypes, name) {
		return false
	}
	return strings.HasPrefix(channel, w.Filter.ChannelNameStartsWith) && strings.HasSuffix(channel, w.Filter.ChannelNameEndsWith)
}

// WithDefaults returns a with every unset limit given its default.
func (a App) WithDefaults() App {
	if a.PingInterval <= 0 {
		a.PingInterval = DefaultPingInterval
	}
	if a.ActivityTimeout <= 0 {
		a.ActivityTimeout = DefaultActivityTimeout
	}
	if a.MaxMessageSize <= 0 {
		a.MaxMessageSize = DefaultMaxMessageSize
	}
	if len(a.AllowedOrigins) == 0 {
		a.AllowedOrigins = []string{"*"}
	}
	if a.AcceptClientEventsFrom == "" {
		a.AcceptClientEventsFrom = ClientEventsMembers
	}
	if a.MaxPresenceMembers <= 0 {
		a.MaxPresenceMembers = DefaultMaxPresenceMembers
	}
	if a.MaxPresenceUserInfo <= 0 {
		a.MaxPresenceUserInfo = DefaultMaxPresenceUserInfo
	}
	if a.SigninTimeout <= 0 {
		a.SigninTimeout = DefaultSigninTimeout
	}
	if a.RateLimit.MaxAttempts <= 0 {
		a.RateLimit.MaxAttempts = DefaultRateLimitMaxAttempts
	}
	if a.RateLimit.Decay <= 0 {
		a.RateLimit.Decay = DefaultRateLimitDecay
	}
	return a
}

// OriginAllowed reports whether a WebSocket with this Origin header may
// connect. An empty origin (a non-browser client) is always allowed. The
// patterns match the origin's host, as Reverb does.
func (a *App) OriginAllowed(origin string) bool {
	if origin == "" {
		return true
	}
	host := origin
	if i := strings.Index(host, "://"); i >= 0 {
		host = host[i+3:]
	}
	if i := strings.IndexAny(host, "/"); i >= 0 {
		host = host[:i]
	}
	host = strings.ToLower(host)
	hostNoPort := host
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		hostNoPort = host[:i]
	}
	for _, pattern := range a.AllowedOrigins {
		pattern = strings.ToLower(strings.TrimSpace(pattern))
		// A full URL (http://host:port/...), a common slip, stands for
		// its host.
		if i := strings.Index(pattern, "://"); i >= 0 {
			pattern = pattern[i+3:]
			if j := strings.IndexByte(pattern, '/'); j >= 0 {
				pattern = pattern[:j]
			}
		}
		if pattern == "*" || pattern == host || pattern == hostNoPort {
			return true
		}
		if suffix, ok := strings.CutPrefix(pattern, "*"); ok && suffix != "" &&
			(strings.HasSuffix(hostNoPort, suffix) || strings.HasSuffix(host, suffix)) {
			return true
		}
	}
	return false
}
