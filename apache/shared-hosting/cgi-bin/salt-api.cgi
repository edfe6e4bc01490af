#!/bin/sh
# CGI wrapper for salt-fcgi on shared hosting (see .htaccess next to it). chmod 755.
# suexec clears the environment, so the master config path is given on the command line.
#
# Placeholders (replace both; the tests in tests/deploy.rs substitute exactly these):
#   @BINARY@         absolute path of the salt-fcgi executable, e.g. /home/you/salt-fcgi/salt-fcgi
#   @MASTER_CONFIG@  the salt-master config, e.g. /home/you/salt/master
# Arguments Apache may pass (from a query string without '=') are deliberately not forwarded.
exec "@BINARY@" --config "@MASTER_CONFIG@"
