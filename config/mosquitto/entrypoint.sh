#!/bin/sh
# Start the device's broker with authentication. Nobody on the home network may command the
# battery anonymously: the nattery services log in with NATTERY_MQTT_USERNAME/NATTERY_MQTT_PASSWORD
# (the same Balena variables the bridge and app read); Home Assistant may get its own account
# (HA_MQTT_USERNAME/HA_MQTT_PASSWORD) that reads nattery's topics and owns its discovery topics,
# but cannot send commands.
set -eu

CONFIG_DIR=${MOSQUITTO_CONFIG_DIR:-/mosquitto/config}
DATA_DIR=${MOSQUITTO_DATA_DIR:-/mosquitto/data}
PORT=${MOSQUITTO_PORT:-1883}
USER_NAME=${NATTERY_MQTT_USERNAME:-nattery}
PASSWORD=${NATTERY_MQTT_PASSWORD:-}

if [ -z "$PASSWORD" ]; then
  echo "mqtt: NATTERY_MQTT_PASSWORD is empty; set it as a Balena fleet or device variable" >&2
  exit 1
fi

mkdir -p "$CONFIG_DIR" "$DATA_DIR"
umask 077
: > "$CONFIG_DIR/passwd"
mosquitto_passwd -b "$CONFIG_DIR/passwd" "$USER_NAME" "$PASSWORD"
{
  echo "user $USER_NAME"
  echo "topic readwrite #"
} > "$CONFIG_DIR/acl"
if [ -n "${HA_MQTT_USERNAME:-}" ] && [ -n "${HA_MQTT_PASSWORD:-}" ]; then
  mosquitto_passwd -b "$CONFIG_DIR/passwd" "$HA_MQTT_USERNAME" "$HA_MQTT_PASSWORD"
  {
    echo "user $HA_MQTT_USERNAME"
    echo "topic read nattery/#"
    echo "topic readwrite homeassistant/#"
  } >> "$CONFIG_DIR/acl"
fi

# Started as root, mosquitto drops to its own user: that user must read its files and own the data.
if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then
  chown mosquitto "$CONFIG_DIR/passwd" "$CONFIG_DIR/acl" "$DATA_DIR"
fi

cat > "$CONFIG_DIR/mosquitto.conf" <<CONF
listener $PORT
allow_anonymous false
password_file $CONFIG_DIR/passwd
acl_file $CONFIG_DIR/acl
persistence true
persistence_location $DATA_DIR/
CONF

exec mosquitto -c "$CONFIG_DIR/mosquitto.conf"
