"""The course's login: PAM, with every refusal taking the same time.

A wrong password is refused after PAM's failure delay (``pam_faildelay``: about 3 s on Debian,
varied by up to a quarter either way), while an account outside the course's groups, with the
right password, was refused in 0.4 s: the time told an attacker that the password was right.
:class:`CoursePAMAuthenticator` makes every refusal, whatever its reason (wrong password,
unknown user, an account outside the allowed groups, a blocked or invalid name), last
:attr:`~CoursePAMAuthenticator.refused_login_seconds`, longer than PAM's longest delay.
"""
import asyncio
import time

from jupyterhub.auth import PAMAuthenticator
from traitlets import Float


class CoursePAMAuthenticator(PAMAuthenticator):
    """JupyterHub's PAMAuthenticator whose refusals all take ``refused_login_seconds``.

    It reads the ``PAMAuthenticator`` section of the configuration like its parent.
    """

    refused_login_seconds = Float(
        4.0,
        config=True,
        help="How long every refused login takes, whatever the reason; longer than PAM's own "
             "failure delay (pam_faildelay's delay plus a quarter), so the time reveals nothing.",
    )

    async def get_authenticated_user(self, handler, data):
        """Authenticate as JupyterHub does, then hold a refusal until ``refused_login_seconds``.

        This wraps the whole of JupyterHub's sequence (PAM, then the blocked and allowed checks)
        rather than one step, so that every way to be refused is covered.
        """
        started = time.monotonic()
        user = await super().get_authenticated_user(handler, data)
        if user is None:
            elapsed = time.monotonic() - started
            if elapsed > self.refused_login_seconds:
                self.log.warning("a refused login took %.1f s, over refused_login_seconds (%.1f s): "
                                 "raise it, or the time may tell why it was refused", elapsed,
                                 self.refused_login_seconds)
            await asyncio.sleep(max(0.0, self.refused_login_seconds - elapsed))
        return user
