# avfrepo: login shells (and pacman hooks run from them, e.g. bootctl update) see
# SYSTEMD_RELAX_ESP_CHECKS=1: the Android Terminal VM's ESP carries no ESP partition type.
export SYSTEMD_RELAX_ESP_CHECKS=1
