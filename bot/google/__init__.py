"""Google's side: credentials, the Operations API client, google.rpc codes and retries."""
