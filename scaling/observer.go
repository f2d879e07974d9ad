package scaling

import "time"

// Observer hears the provider's traffic, for metrics (stats implements
// it; scaling never imports modules/*). The Module hands the graph's
// Observer, when there is one, to the provider it builds and to the
// subscription loop. Its methods run on publishing goroutines and on the
// delivery goroutine: they must be cheap, must not block and must be safe
// for concurrent use.
type Observer interface {
	// EnvelopePublished reports one Publish call that took took and
	// returned err (ErrLocalOnly included).
	EnvelopePublished(took time.Duration, err error)
	// EnvelopeReceived reports one envelope handed to the subscriber.
	EnvelopeReceived()
}

// observePublish reports a Publish call that started at start; deferred by
// Publish with a pointer to its named error.
func observePublish(o Observer, start time.Time, err *error) {
	o.EnvelopePublished(time.Since(start), *err)
}
