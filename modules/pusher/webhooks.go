package pusher

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// The webhook event names Pusher sends, as "name" in each event.
const (
	WebhookChannelOccupied   = "channel_occupied"
	WebhookChannelVacated    = "channel_vacated"
	WebhookMemberAdded       = "member_added"
	WebhookMemberRemoved     = "member_removed"
	WebhookClientEvent       = "client_event"
	WebhookCacheMiss         = "cache_miss"
	WebhookSubscriptionCount = "subscription_count"
)

// WebhookEvents lists every webhook event name, in the order Pusher's
// documentation gives them.
var WebhookEvents = []string{
	WebhookChannelOccupied, WebhookChannelVacated, WebhookMemberAdded, WebhookMemberRemoved,
	WebhookClientEvent, WebhookCacheMiss, WebhookSubscriptionCount,
}

// ValidWebhookEvent reports whether name is a webhook event name.
func ValidWebhookEvent(name string) bool {
	for _, e := range WebhookEvents {
		if e == name {
			return true
		}
	}
	return false
}

// Webhook headers: the app key and the hex HMAC-SHA256 of the body with
// the app secret, which every Pusher server SDK checks.
const (
	HeaderWebhookKey       = "X-Pusher-Key"
	HeaderWebhookSignature = "X-Pusher-Signature"
)

// WebhookSignature returns the X-Pusher-Signature of a webhook body.
func WebhookSignature(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}
