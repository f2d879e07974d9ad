// Package app is Fizz's composition root: it loads and validates the
// configuration, builds the logger and composes every fx module in order
// (config and logging, scaling, modules, handlers, server). It may import
// anything and is imported only by main and the black-box tests.
package app
