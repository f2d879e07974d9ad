package webhooks

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/pusher"
)

// HeaderWebhookID carries the outbox ids of a POST's events, in order,
// comma-separated: the same events sent again carry the same ids, so a
// receiver can drop a repeat.
const HeaderWebhookID = "X-Fizz-Webhook-Id"

// maxAnswer bounds the part of a receiver's answer that is read.
const maxAnswer = 64 << 10

// post sends ds to hook as one POST and reports whether the receiver
// answered 2xx, with the answer's status ("200", "timeout", "error").
func (s *Sender) post(ctx context.Context, app *apps.App, hook *apps.Webhook, ds []*delivery) (bool, string) {
	var body bytes.Buffer
	body.WriteString(`{"time_ms":`)
	body.WriteString(strconv.FormatInt(s.now().UnixMilli(), 10))
	body.WriteString(`,"events":[`)
	ids := make([]string, len(ds))
	for i, d := range ds {
		if i > 0 {
			body.WriteByte(',')
		}
		body.Write(d.ev.raw)
		ids[i] = d.entry.e.ID
	}
	body.WriteString(`]}`)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook.URL, bytes.NewReader(body.Bytes()))
	if err != nil {
		return false, "error"
	}
	for k, v := range hook.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(pusher.HeaderWebhookKey, app.Key)
	req.Header.Set(pusher.HeaderWebhookSignature, pusher.WebhookSignature(app.Secret, body.Bytes()))
	req.Header.Set(HeaderWebhookID, strings.Join(ids, ","))
	resp, err := s.client.Do(req)
	if err != nil {
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
			return false, "timeout"
		}
		return false, "error"
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer)) // lets the connection be reused
	_ = resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 300, strconv.Itoa(resp.StatusCode)
}
