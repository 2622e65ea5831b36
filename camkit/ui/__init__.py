"""What people see: tables in every format, progress displays and figures, all rendered from results."""
