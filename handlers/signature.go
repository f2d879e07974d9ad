package handlers

import (
	"crypto/md5"
	"encoding/hex"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/pusher"
)

// maxClockSkew is how far auth_timestamp may be from the server's clock.
const maxClockSkew = 600 * time.Second

// localApp is the Fiber Locals key of the *apps.App a signed request is for.
const localApp = "fizz.app"

// Signature verifies Pusher's REST API signature on /apps/{app_id}/…
// requests. It mirrors Reverb's VerifySignature middleware, with Pusher's
// stricter rules: auth_key must be the app's key, auth_timestamp within 600
// seconds, body_md5 must match the body, and the signature is compared in
// constant time.
type Signature struct {
	apps   *apps.Provider
	prefix string // the server path prefix, stripped before signing
	now    func() time.Time
}

// NewSignature returns the middleware for apps, under the path prefix.
func NewSignature(provider *apps.Provider, prefix string) *Signature {
	return &Signature{apps: provider, prefix: prefix, now: time.Now}
}

// Handle is the Fiber middleware.
func (s *Signature) Handle(c *fiber.Ctx) error {
	app, err := s.apps.FindByID(c.Params("appId"))
	if err != nil {
		return fiber.NewError(fiber.StatusNotFound, "No app with id "+strconv.Quote(clip(c.Params("appId"))))
	}
	if err := s.verify(c, app); err != nil {
		return err
	}
	c.Locals(localApp, app)
	return c.Next()
}

func unauthorized(msg string) error { return fiber.NewError(fiber.StatusUnauthorized, msg) }

func (s *Signature) verify(c *fiber.Ctx, app *apps.App) error {
	params := make(map[string]string)
	seen := make(map[string]struct{})
	repeated := ""
	c.Context().QueryArgs().VisitAll(func(k, v []byte) {
		// The handlers read the first value of a key, the signing string
		// keeps one spelling of a key: a repeated key (in any case) would
		// let an unsigned value through.
		lower := strings.ToLower(string(k))
		if _, dup := seen[lower]; dup && repeated == "" {
			repeated = string(k)
		}
		seen[lower] = struct{}{}
		params[string(k)] = string(v)
	})
	if repeated != "" {
		return unauthorized("query parameter " + strconv.Quote(clip(repeated)) + " is repeated")
	}
	signature, ok := params["auth_signature"]
	if !ok || signature == "" {
		return unauthorized("auth_signature is missing")
	}
	if key := params["auth_key"]; key != app.Key {
		if key == "" {
			return unauthorized("auth_key is missing")
		}
		return unauthorized("auth_key does not match the app")
	}
	ts, ok := params["auth_timestamp"]
	if !ok {
		return unauthorized("auth_timestamp is missing")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return unauthorized("auth_timestamp is not a number")
	}
	if skew := s.now().Sub(time.Unix(sec, 0)); skew > maxClockSkew || skew < -maxClockSkew {
		return unauthorized("auth_timestamp is more than 600 seconds from the server's time")
	}
	if v, ok := params["auth_version"]; ok && v != "1.0" {
		return unauthorized("auth_version must be 1.0")
	}
	// The raw body: Ctx.Body() would inflate a Content-Encoding body
	// without limit, before the signature is checked.
	body := c.Request().Body()
	if len(body) > 0 {
		sum := md5.Sum(body)
		want := hex.EncodeToString(sum[:])
		got, ok := params["body_md5"]
		if !ok {
			return unauthorized("body_md5 is missing")
		}
		if !pusher.EqualSignature(want, strings.ToLower(got)) {
			return unauthorized("body_md5 does not match the body")
		}
	}
	path := strings.TrimPrefix(string(c.Request().URI().PathOriginal()), s.prefix)
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if pusher.EqualSignature(pusher.SignRequest(app.Secret, c.Method(), path, params), signature) {
		return nil
	}
	// SDKs sign the path before their HTTP library escapes it (a '#' in a
	// user channel, a space in a user id): accept the decoded form too.
	if decoded, err := url.PathUnescape(path); err == nil && decoded != path &&
		pusher.EqualSignature(pusher.SignRequest(app.Secret, c.Method(), decoded, params), signature) {
		return nil
	}
	return unauthorized("Invalid auth_signature")
}
