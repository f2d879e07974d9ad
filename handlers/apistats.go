package handlers

import (
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/fizz-server/fizz/modules/stats"
)

// apiStats returns the middleware that counts every /apps request by route
// pattern, method and status. It runs the app's error handler itself, as
// Fiber's logger middleware does, so that the status it counts is the one
// sent. The route is c.Route().Path without the configured prefix (never
// the raw path, which would give one series per app and channel); a
// request refused before routing (a bad signature) or matching no route
// counts under the group's own pattern, "/apps/:appId".
func apiStats(s *stats.Stats, prefix string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if err := c.Next(); err != nil {
			if herr := c.App().ErrorHandler(c, err); herr != nil {
				_ = c.SendStatus(fiber.StatusInternalServerError) // the status is what is counted
			}
		}
		route := strings.TrimPrefix(c.Route().Path, prefix)
		s.APIRequest(route, methodLabel(c.Method()), c.Response().StatusCode())
		return nil
	}
}

// methodLabel returns a constant string for the request method: the one
// in fiber.Ctx is reused after the request, and a label value is kept.
func methodLabel(m string) string {
	for _, known := range [...]string{fiber.MethodGet, fiber.MethodPost, fiber.MethodHead, fiber.MethodPut, fiber.MethodDelete, fiber.MethodPatch, fiber.MethodOptions} {
		if m == known {
			return known
		}
	}
	return "other"
}
