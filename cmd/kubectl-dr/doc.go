// Command kubectl-dr is the kubectl dr plugin. Exit codes: 0 ok, 1 failure,
// 2 usage, 3 partial (some nodes failed), 130 interrupted.
package main
