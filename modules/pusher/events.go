package pusher

// Event names the server and clients exchange.
const (
	EventConnectionEstablished = "pusher:connection_established"
	EventError                 = "pusher:error"
	EventPing                  = "pusher:ping"
	EventPong                  = "pusher:pong"
	EventSubscribe             = "pusher:subscribe"
	EventUnsubscribe           = "pusher:unsubscribe"
	EventCacheMiss             = "pusher:cache_miss"
	EventSignin                = "pusher:signin"

	EventSubscriptionSucceeded = "pusher_internal:subscription_succeeded"
	EventSubscriptionError     = "pusher:subscription_error"
	EventMemberAdded           = "pusher_internal:member_added"
	EventMemberRemoved         = "pusher_internal:member_removed"

	// ClientEventPrefix starts every event a client may send to other clients.
	ClientEventPrefix = "client-"
)

// MaxEventNameLength is the longest event name Pusher accepts.
const MaxEventNameLength = 200
