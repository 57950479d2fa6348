// Package cmdutil holds what every verb of kubectl dr shares: the Factory
// verbs get their clients from, the command skeleton, confirmation, exit
// codes and how an error is reported. It never imports a verb's package or
// anything under agent/.
package cmdutil
