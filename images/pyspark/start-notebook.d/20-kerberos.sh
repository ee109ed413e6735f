# Kerberos, when the cluster needs it (sourced by start.sh).
# - a mounted ticket cache: set KRB5CCNAME to it; nothing to do here;
# - a mounted keytab: set KRB5_KEYTAB and KRB5_PRINCIPAL, and this hook gets a
#   ticket at start (renew later in the notebook with `kinit -R` or the keytab).
# /etc/krb5.conf is Debian's default unless one is mounted over it.
if [ -n "${KRB5_KEYTAB:-}" ]; then
  if [ -z "${KRB5_PRINCIPAL:-}" ] || [ ! -r "$KRB5_KEYTAB" ]; then
    echo "kerberos: KRB5_KEYTAB=$KRB5_KEYTAB needs a readable file and KRB5_PRINCIPAL" >&2
  elif ! kinit -k -t "$KRB5_KEYTAB" "$KRB5_PRINCIPAL"; then
    # A server without a ticket is still useful (local Spark); say why HDFS will refuse.
    echo "kerberos: kinit for $KRB5_PRINCIPAL failed; cluster access will be refused" >&2
  fi
fi
