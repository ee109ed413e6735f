# A fresh named volume or an empty mounted home starts with the image's
# /home/jovyan contents only when Docker copies them; make sure the basics exist.
mkdir -p "${HOME:-/home/jovyan}/.local"
