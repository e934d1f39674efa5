"""lists per statement: the recipient lists chosen for each statement's email

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column, added in place on both databases: a statement scheduled before has none, and goes on to
    # channels.email.list as it did.
    op.add_column('statements', sa.Column('lists', sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column('statements', 'lists')
